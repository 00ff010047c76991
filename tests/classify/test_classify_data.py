import numpy as np
import pytest
import torch

from synthmed.classify.data import labels_for, load_images, prepare_image, record_class, to_channels
from synthmed.data import ImageDataset
from synthmed.data.records import DatasetRecord
from synthmed.errors import DataError

TUMOUR = {"modality": "brain_mri", "tumor_present": True, "hemisphere": "left", "tumor_type": "glioma"}
HEALTHY = {"modality": "brain_mri", "tumor_present": False}


def test_labels_prefer_requested_findings_then_findings_then_label():
    generated = DatasetRecord(file_name="a.png", findings=HEALTHY, requested_findings=TUMOUR)
    assert record_class(generated, "binary") == 1  # labelled with what it was asked to show
    assert record_class(DatasetRecord(file_name="b.png", findings=HEALTHY), "binary") == 0
    assert record_class(DatasetRecord(file_name="c.png", label="notumor"), "binary") == 0
    assert record_class(DatasetRecord(file_name="d.png", label="meningioma"), "binary") == 1
    assert record_class(DatasetRecord(file_name="e.png", findings=TUMOUR), "multiclass") == 1
    assert record_class(DatasetRecord(file_name="f.png", label="pituitary"), "multiclass") == 3
    assert labels_for([generated], "multiclass").tolist() == [1]


def test_unusable_label_names_the_row():
    with pytest.raises(DataError, match="'x.png'"):
        record_class(DatasetRecord(file_name="x.png"), "binary")
    with pytest.raises(DataError, match="'y.png'.*tumor_type"):
        record_class(DatasetRecord(file_name="y.png", findings={**TUMOUR, "tumor_type": None}), "multiclass")


def test_prepare_image_pads_keeps_range_and_channels():
    img16 = np.full((40, 20), 65535, dtype=np.uint16)
    x = prepare_image(img16, 16)
    assert x.shape == (1, 16, 16) and x.dtype == torch.float32
    assert float(x.max()) == pytest.approx(1.0, abs=1e-4)
    assert float(x[0, :, 0].max()) < 0.01  # zero padding on the left, aspect ratio kept
    rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    assert prepare_image(rgb, 8).shape == (3, 8, 8)
    luma = to_channels(prepare_image(rgb, 8).unsqueeze(0), 1)
    assert float(luma.mean()) == pytest.approx(0.299, abs=1e-3)
    assert to_channels(torch.rand(2, 1, 4, 4), 3).shape == (2, 3, 4, 4)


def test_load_images_from_a_dataset(phantom_dir):
    ds = ImageDataset(phantom_dir)
    x = load_images(ds, ds.records[:5], 32, progress=False)
    assert x.shape == (5, 1, 32, 32) and x.dtype == torch.float16
    assert 0 <= float(x.min()) and float(x.max()) <= 1
