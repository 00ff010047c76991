"""Training data: checks before any model is loaded, captions, splits, resizing."""

from __future__ import annotations

import pytest

from synthmed.errors import DataError
from synthmed.testing.ldm import write_disc_dataset
from synthmed.train.ldm import LDMTrainConfig, train_ldm
from synthmed.train.ldm.data import load_training_data


def test_missing_data_dir_is_named(tmp_path):
    with pytest.raises(DataError, match="nowhere.*not found"):
        load_training_data(tmp_path / "nowhere", resolution=32)


def test_dataset_without_text_says_to_caption_it(tmp_path):
    root = write_disc_dataset(tmp_path / "d", n=3, captions=False)
    with pytest.raises(DataError, match=r"3 of 3 rows have no 'text'.*synthmed caption"):
        load_training_data(root, resolution=32)


def test_train_ldm_fails_on_bad_data_before_loading_models(tmp_path):
    cfg = LDMTrainConfig(data=tmp_path / "nowhere", out=tmp_path / "out", max_steps=1)
    with pytest.raises(DataError, match="not found"):
        train_ldm(cfg)
    assert not (tmp_path / "out").exists()


def test_images_and_captions(disc_data):
    data = load_training_data(disc_data, resolution=16)
    assert data.images.shape == (12, 1, 16, 16)
    assert -1.0 <= float(data.images.min()) and float(data.images.max()) <= 1.0
    assert all(len(c) == 2 for c in data.captions)  # text + one paraphrase
    assert data.captions[0][0].startswith("Axial T1")
    no_para = load_training_data(disc_data, resolution=None, use_paraphrases=False)
    assert no_para.images.shape[-1] == 32 and all(len(c) == 1 for c in no_para.captions)


def test_unknown_split_lists_the_present_ones(disc_data):
    with pytest.raises(DataError, match=r"no rows in split 'val'.*\['train'\]"):
        load_training_data(disc_data, resolution=32, split="val")


def test_masks_are_loaded_when_every_row_has_one(phantom_dir):
    data = load_training_data(phantom_dir, resolution=48, split=None)
    assert data.masks is not None and data.masks.shape == (len(data), 1, 48, 48)
    has_tumour = ["no tumour" not in c[0].lower() and "no tumor" not in c[0].lower() for c in data.captions]
    lesion_px = data.masks.flatten(1).sum(1)
    assert all((px > 0) == t for px, t in zip(lesion_px.tolist(), has_tumour, strict=True))


def test_no_masks_without_mask_files(disc_data):
    assert load_training_data(disc_data, resolution=16).masks is None


def test_grey_files_stored_as_rgba_train_a_grayscale_model_with_a_warning(tmp_path, caplog):
    import numpy as np
    from PIL import Image

    root = write_disc_dataset(tmp_path / "d", n=4)
    first = root / "images" / sorted(p.name for p in (root / "images").iterdir())[0]
    grey = np.array(Image.open(first))
    Image.fromarray(np.dstack([grey, grey, grey, np.full_like(grey, 255)]), "RGBA").save(first)
    plain = load_training_data(write_disc_dataset(tmp_path / "plain", n=4), resolution=16)
    with caplog.at_level("WARNING"):
        data = load_training_data(root, resolution=16)
    assert data.images.shape[1] == 1 and "stored as RGB/RGBA but hold grey values" in caplog.text
    assert np.array_equal(data.images.numpy(), plain.images.numpy())  # the same pixels as the grey file


def test_colour_images_mixed_with_grayscale_are_refused(tmp_path):
    import numpy as np
    from PIL import Image

    root = write_disc_dataset(tmp_path / "d", n=4)
    first = root / "images" / sorted(p.name for p in (root / "images").iterdir())[0]
    grey = np.array(Image.open(first))
    Image.fromarray(np.dstack([grey, grey // 2, grey // 3])).save(first)
    expected = rf"1 images are in colour \(first: 'images/{first.name}'\) but 3 are grayscale"
    with pytest.raises(DataError, match=expected):
        load_training_data(root, resolution=16)
