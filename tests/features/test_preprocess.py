"""Image preparation: TF1 resize, clean-fid resize, bit depth and channels kept faithful."""

import numpy as np
import pytest
import torch
from PIL import Image

from synthmed.features.preprocess import prepare_batch, resize_pil_bicubic, resize_tf1_bilinear, to_float01, to_uint8


def _tf1_reference(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Loop version of TF 1.x resize_bilinear(align_corners=False, half_pixel_centers=False)."""
    in_h, in_w = img.shape
    out = np.empty((out_h, out_w))
    for i in range(out_h):
        y = i * in_h / out_h
        y0 = int(np.floor(y))
        y1, dy = min(y0 + 1, in_h - 1), y - y0
        for j in range(out_w):
            x = j * in_w / out_w
            x0 = int(np.floor(x))
            x1, dx = min(x0 + 1, in_w - 1), x - x0
            top = img[y0, x0] + (img[y0, x1] - img[y0, x0]) * dx
            bot = img[y1, x0] + (img[y1, x1] - img[y1, x0]) * dx
            out[i, j] = top + (bot - top) * dy
    return out


@pytest.mark.parametrize("shape,size", [((7, 9), (13, 5)), ((16, 16), (29, 29)), ((30, 20), (11, 11))])
def test_tf1_bilinear_matches_loop_reference(shape, size):
    img = np.random.default_rng(0).uniform(0, 255, size=shape)
    ours = resize_tf1_bilinear(torch.from_numpy(img)[None, None].float(), size)[0, 0].numpy()
    np.testing.assert_allclose(ours, _tf1_reference(img, *size), atol=1e-3)


def test_tf1_bilinear_has_no_half_pixel_offset():
    x = torch.arange(4, dtype=torch.float32).view(1, 1, 1, 4)
    out = resize_tf1_bilinear(x, (1, 8))[0, 0, 0]
    # output i samples input i / 2 (TF1), not (i + 0.5) / 2 - 0.5 (half-pixel centres); edge clamps
    assert out.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.0]


def test_clean_fid_resize_is_pil_bicubic_on_float_clipped():
    img = np.random.default_rng(1).uniform(0, 255, size=(20, 24)).astype(np.float32)
    ref = np.asarray(Image.fromarray(img, mode="F").resize((9, 7), Image.Resampling.BICUBIC)).clip(0, 255)
    np.testing.assert_array_equal(resize_pil_bicubic(img, (7, 9), 255.0), ref)


def test_16_bit_is_not_quantised_unless_the_convention_needs_uint8():
    a = np.full((8, 8), 1000, np.uint16)
    b = a + 100                                   # differ by less than one 8-bit step (257)
    fa, fb = to_float01(a), to_float01(b)
    assert fb.max() - fa.max() == pytest.approx(100 / 65535, rel=1e-4)
    xa, xb = (prepare_batch([im], size=8, resize="bicubic-antialias", uint8_input=False, scale=1.0) for im in (a, b))
    assert not torch.equal(xa, xb)
    qa, qb = (prepare_batch([im], size=8, resize="tf1-bilinear", uint8_input=True, scale=255.0) for im in (a, b))
    assert torch.equal(qa, qb) and float(qa.max()) == round(1000 / 257)
    assert to_uint8(np.array([[65535]], np.uint16)).item() == 255


def test_grayscale_replicated_after_resize_and_rgb_kept():
    gray = np.random.default_rng(2).integers(0, 255, size=(10, 12), dtype=np.uint8)
    x = prepare_batch([gray], size=16, resize="tf1-bilinear", uint8_input=True, scale=255.0)
    assert x.shape == (1, 3, 16, 16) and torch.equal(x[0, 0], x[0, 1]) and torch.equal(x[0, 1], x[0, 2])
    rgb = np.random.default_rng(3).integers(0, 255, size=(10, 12, 3), dtype=np.uint8)
    y = prepare_batch([rgb], size=16, resize="bilinear-antialias", uint8_input=False, scale=1.0)
    assert not torch.equal(y[0, 0], y[0, 1])
    one = prepare_batch([rgb], size=16, resize="bilinear-antialias", uint8_input=False, scale=1.0, channels=1)
    assert one.shape == (1, 1, 16, 16)


def test_float_to_uint8_rounds_or_truncates_like_torchmetrics():
    img = np.array([[0.999, 0.5]], np.float32)
    assert to_uint8(img).ravel().tolist() == [255, 128]
    assert to_uint8(img, truncate=True).ravel().tolist() == [254, 127]


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="unsupported image dtype"):
        to_float01(np.zeros((4, 4), np.int32))
    with pytest.raises(ValueError, match="unsupported image shape"):
        to_float01(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="unknown resize method"):
        prepare_batch([np.zeros((4, 4), np.uint8)], size=8, resize="lanczos", uint8_input=False, scale=1.0)
