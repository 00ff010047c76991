"""The Localise and Runs tabs' callbacks: uploads in every format, maps, explanations, run overviews."""

from __future__ import annotations

import json
import shutil
import sys

import nibabel as nib
import numpy as np
import pytest
from pydicom.data import get_testdata_file

from synthmed.app import localize as L
from synthmed.app.models import AppConfig, AppModels
from synthmed.data.imageio import load_image
from synthmed.errors import ConfigError, DataError
from synthmed.testing.chat_server import ChatServer, Reply


def test_read_scan_in_each_format(phantom_png, tmp_path):
    (png,) = L.read_scan(phantom_png)
    np.testing.assert_array_equal(png, load_image(phantom_png))
    dcm = tmp_path / "scan.dcm"
    shutil.copy(get_testdata_file("MR_small.dcm"), dcm)
    (mr,) = L.read_scan(dcm)
    assert mr.shape == (64, 64) and mr.max() > mr.min()
    bare = tmp_path / "no-suffix"
    shutil.copy(dcm, bare)  # recognised by its DICM preamble
    assert L.read_scan(bare)[0].shape == (64, 64)
    vol = np.random.default_rng(0).integers(0, 1000, (24, 20, 5)).astype(np.int16)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "vol.nii.gz")
    slices = L.read_scan(tmp_path / "vol.nii.gz")
    assert len(slices) == 5 and all(s.ndim == 2 for s in slices)


def test_unreadable_uploads_are_named(tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    with pytest.raises(DataError, match="PNG, JPEG") as err:
        L.read_scan(junk)
    assert "notes.txt" in str(err.value)
    fake = tmp_path / "broken.dcm"
    fake.write_bytes(b"\0" * 200)
    with pytest.raises(DataError, match="DICOM") as err:
        L.read_scan(fake)
    assert "broken.dcm" in str(err.value)
    bad_png = tmp_path / "broken.png"
    bad_png.write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png"):
        L.read_scan(bad_png)


def test_localise_then_explain_in_three_modes(models, phantom_png):
    image = load_image(phantom_png)
    loc = L.localize_slice(models, image)
    assert loc.heatmap.shape == (*image.shape, 3) and loc.overlay.shape == (*image.shape, 3)
    assert 0.0 <= loc.image_score <= 1.0 and loc.findings_text
    with pytest.raises(ConfigError, match="--vlm"):
        L.explain_slice(models, image, loc)

    def vlm(req):
        if "red region marks the tumour" in req.text():
            return Reply(json.dumps({"findings": {"tumor_present": True, "hemisphere": "left"},
                                     "explanation": "The red region is a bright mass."}))
        return Reply("I cannot tell.")

    with ChatServer(vlm) as srv:
        chatty = AppModels(AppConfig(localizer=models.localizer_dir, vlm="api:test-vlm", vlm_base_url=srv.base_url,
                                     device="cpu"))
        answers = L.explain_slice(chatty, image, loc)
    assert set(answers) == {"zero-shot", "instruction", "chain-of-thought"}
    assert answers["instruction"].startswith("The red region") and "hemisphere" in answers["instruction"]
    assert answers["zero-shot"].startswith("(no usable answer")


def test_no_localiser_says_how_to_add_one(phantom_png):
    with pytest.raises(ConfigError, match="--localizer"):
        L.localize_slice(AppModels(AppConfig()), load_image(phantom_png))


def test_build_app_and_errors_shown_in_the_app(models):
    import gradio as gr

    from synthmed.app.ui import build_app, shown_errors

    app = build_app(models.cfg, models)
    assert isinstance(app, gr.Blocks)

    @shown_errors
    def fails(kind):
        if kind == "ours":
            raise ConfigError("no localiser: start the app with --localizer DIR")
        raise KeyError("boom")

    with pytest.raises(gr.Error, match="--localizer"):
        fails("ours")
    with pytest.raises(gr.Error, match="unexpected error .KeyError"):
        fails("bug")


def test_without_gradio_the_extra_is_named(monkeypatch):
    from synthmed.app.ui import require_gradio

    monkeypatch.setitem(sys.modules, "gradio", None)
    with pytest.raises(ConfigError, match=r"synthmed\[app\]"):
        require_gradio()
