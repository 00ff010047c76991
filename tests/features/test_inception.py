"""The FID Inception-v3: weight-file layout, lookup, checksum, errors, preprocessing modes (random weights)."""

import numpy as np
import pytest
import torch

from synthmed.errors import ConfigError
from synthmed.features import build_extractor
from synthmed.features.inception import InceptionExtractor, load_inception_state, resolve_inception_weights
from synthmed.features.inception_net import FIDInceptionV3
from synthmed.testing.reference import NO_DEPS_INSTALL, import_torch_fidelity

# Facts about pt_inception-2015-12-05-6726825d.pth (torchvision Inception3 layout without AuxLogits,
# 1008 classes, as loaded strictly by pytorch-fid / torch-fidelity): a few keys with their shapes.
ANCHOR_KEYS = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_5d.branch5x5_1.bn.running_var": (48,),
    "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
    "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
    "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
    "Mixed_7b.branch3x3dbl_1.conv.weight": (448, 1280, 1, 1),
    "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
    "fc.weight": (1008, 2048),
    "fc.bias": (1008,),
}
N_CONV = 94                     # convolution layers of Inception-v3 without the auxiliary head
N_PARAMS = 23_850_960           # torchvision inception_v3: 27,161,264 - AuxLogits 3,326,696 + 8 extra classes


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    """A file with the real file's key layout and random values (the real one cannot be downloaded here)."""
    torch.manual_seed(0)
    state = FIDInceptionV3().state_dict()
    rand = {k: (torch.rand_like(v) + 0.5 if "running_var" in k else torch.randn_like(v) * 0.05)
            if v.is_floating_point() else v for k, v in state.items()}
    path = tmp_path_factory.mktemp("w") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(rand, path)
    return path


def test_state_dict_layout_matches_the_published_file(random_weights):
    state = torch.load(random_weights, weights_only=True)
    for key, shape in ANCHOR_KEYS.items():
        assert tuple(state[key].shape) == shape, key
    assert sum(k.endswith(".conv.weight") for k in state) == N_CONV
    assert sum(p.numel() for p in FIDInceptionV3().parameters()) == N_PARAMS
    without_counters = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert len(load_inception_state(random_weights)) == len(without_counters) == 5 * N_CONV + 2


@pytest.fixture(scope="module")
def extractor(random_weights):
    return build_extractor("inception", weights=random_weights, verify_weights=False)


def test_checksum_refuses_other_files_unless_told(random_weights, extractor):
    with pytest.raises(ConfigError, match="does not start with 6726825d"):
        InceptionExtractor(random_weights)
    desc = extractor.describe()
    assert desc["comparable_with_published"] is False and desc["weights"]["checksum_verified"] is False
    assert len(desc["weights"]["sha256"]) == 64 and "UNVERIFIED" in desc["note"]


@pytest.mark.parametrize("mode", ["torch-fidelity", "clean-fid", "torchmetrics"])
def test_forward_shapes_and_recorded_preprocessing(extractor, mode, monkeypatch):
    ext = extractor
    monkeypatch.setattr(ext, "mode", mode)
    img16 = (np.random.default_rng(0).random((40, 40)) * 65535).astype(np.uint16)
    rgb = np.random.default_rng(1).integers(0, 255, size=(50, 30, 3), dtype=np.uint8)
    x = ext.preprocess([img16, rgb])
    assert x.shape == (2, 3, 299, 299) and -1.0 <= float(x.min()) and float(x.max()) <= 1.0
    if mode == "torch-fidelity":                     # one forward pass is enough (CPU time)
        out = ext.extract([img16, rgb])
        assert out.features.shape == (2, 2048) and out.logits.shape == (2, 1008)
        assert torch.isfinite(out.features).all()
    pre = ext.describe()["preprocessing"]
    assert pre["convention"] == mode and pre["size"] == [299, 299]
    assert pre["resize"] == {"torch-fidelity": "tf1-bilinear", "clean-fid": "pil-bicubic",
                             "torchmetrics": "bilinear-antialias"}[mode]
    assert pre["quantisation"].startswith("none") == (mode == "clean-fid")


def test_cache_key_depends_on_preprocessing(extractor, monkeypatch):
    key = extractor.cache_key()
    monkeypatch.setattr(extractor, "mode", "clean-fid")
    assert extractor.cache_key() != key
    with pytest.raises(ConfigError, match="unknown Inception mode 'bogus'; available: torch-fidelity"):
        build_extractor("inception", weights=extractor.weights_path, verify_weights=False, preprocessing="bogus")


def test_missing_weights_error_names_file_and_place(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHMED_WEIGHTS_DIR", str(tmp_path / "w"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(ConfigError) as err:
        build_extractor("inception")
    msg = str(err.value)
    assert "pt_inception-2015-12-05-6726825d.pth" in msg and str(tmp_path / "w") in msg and "--weights" in msg
    monkeypatch.setenv("SYNTHMED_OFFLINE", "1")
    with pytest.raises(ConfigError, match="downloads are disabled"):
        build_extractor("inception", allow_download=True)
    with pytest.raises(ConfigError, match="not found"):
        build_extractor("inception", weights=tmp_path / "nope.pth")


def test_weights_found_in_cache_dir_and_wrong_layout_refused(tmp_path, monkeypatch, random_weights):
    wdir = tmp_path / "w"
    wdir.mkdir()
    (wdir / random_weights.name).write_bytes(random_weights.read_bytes())
    monkeypatch.setenv("SYNTHMED_WEIGHTS_DIR", str(wdir))
    assert resolve_inception_weights() == wdir / random_weights.name
    bad = tmp_path / "bad.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, bad)
    with pytest.raises(ConfigError, match="does not have the FID Inception-v3 layout"):
        InceptionExtractor(bad, verify=False)


def test_same_network_as_torch_fidelity(random_weights):
    """Identical features on identical weights and input (where torch-fidelity is installed; CI installs it)."""
    if import_torch_fidelity() is None:
        pytest.skip(f"torch-fidelity is not installed ({NO_DEPS_INSTALL})")
    import torch_fidelity.feature_extractor_inceptionv3 as tf
    theirs = tf.FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                            feature_extractor_weights_path=str(random_weights))
    ours = InceptionExtractor(random_weights, verify=False)
    imgs = [np.random.default_rng(i).integers(0, 255, size=(64, 48, 3), dtype=np.uint8) for i in range(2)]
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        f_theirs, l_theirs = theirs(x)
    out = ours.extract(imgs)
    torch.testing.assert_close(out.features, f_theirs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.logits, l_theirs, rtol=1e-5, atol=1e-4)
