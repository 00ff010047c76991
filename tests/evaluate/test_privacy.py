"""``evaluate privacy``: copies of training images are flagged (and saved side by side), new images are not."""

import json

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from synthmed.data.dataset import DatasetWriter, ImageDataset
from synthmed.data.phantom import PhantomConfig, generate_phantom
from synthmed.evaluate.privacy import evaluate_privacy, nearest_neighbours


def test_nearest_neighbours_brute_force():
    rng = np.random.default_rng(0)
    q, r = rng.normal(size=(37, 5)), rng.normal(size=(23, 5))
    d, i = nearest_neighbours(torch.from_numpy(q), torch.from_numpy(r), chunk=8)
    ref = cdist(q, r)
    np.testing.assert_allclose(d, ref.min(1), rtol=1e-9)
    np.testing.assert_array_equal(i, ref.argmin(1))
    d, i = nearest_neighbours(torch.from_numpy(r), torch.from_numpy(r), exclude_self=True, chunk=5)
    ref = cdist(r, r) + np.diag(np.full(23, np.inf))
    np.testing.assert_allclose(d, ref.min(1), rtol=1e-9)
    np.testing.assert_array_equal(i, ref.argmin(1))


def test_an_exact_copy_is_at_distance_zero():
    """Large, offset vectors: the expanded form |q|^2 + |r|^2 - 2 q.r leaves a rounding residue there."""
    r = torch.from_numpy(np.random.default_rng(1).uniform(0.2, 1.0, size=(40, 4096)))
    d, i = nearest_neighbours(r, r)              # the expanded form alone left 18 of these 40 above 0
    assert d.tolist() == [0.0] * 40 and i.tolist() == list(range(40))


@pytest.fixture(scope="module")
def audit_sets(tmp_path_factory, phantom_dir):
    """train: the shared phantom (with train/val/test rows); fake: 6 exact copies of training rows,
    2 noised copies, 10 new images from another phantom seed."""
    root = tmp_path_factory.mktemp("privacy")
    generate_phantom(PhantomConfig(out=root / "new", n=10, size=96, seed=21, workers=1), progress=False)
    train_ds, new_ds = ImageDataset(phantom_dir), ImageDataset(root / "new")
    train_rows = [r for r in train_ds.records if r.split != "test"]
    writer = DatasetWriter(root / "fake")
    rng = np.random.default_rng(0)
    copies = []
    for k, rec in enumerate(train_rows[:8]):
        img = train_ds.image(rec)
        if k >= 6:
            img = np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)
        writer.add(f"copy{k}.png", img, source="generated:test")
        copies.append(rec.file_name)
    for k, rec in enumerate(new_ds.records):
        writer.add(f"new{k}.png", new_ds.image(rec), source="generated:test")
    return phantom_dir, root / "fake", copies, root / "cache"


def test_copies_flagged_new_images_not(audit_sets, tmp_path):
    train, fake, copies, cache = audit_sets
    res = evaluate_privacy(dict(train=train, fake=fake, out=tmp_path / "audit", features="efficientnet-lite0",
                                cache_dir=cache))
    assert "split == 'test'" in res.reference and res.n_reference > 0
    by_name = {im["file_name"]: im for im in res.images}
    for k in range(8):
        im = by_name[f"images/copy{k}.png"]
        assert im["likely_copy"], im
        assert im["nearest_train_pixels"] == copies[k]
    new_flags = [by_name[f"images/new{k}.png"]["likely_copy"] for k in range(10)]
    assert sum(new_flags) <= 1
    assert res.memorisation.value == pytest.approx(res.likely_copies / 18)
    assert 8 / 18 <= res.memorisation.value <= 9 / 18
    assert by_name["images/copy0.png"]["distance_pixels"] == 0.0      # an exact copy, on any BLAS
    pixels = res.spaces["pixels"]
    assert pixels["copy_test"]["auc_fake_closer"] > 0.5 and pixels["threshold"] > 0
    assert len(res.pairs) == res.likely_copies
    png = tmp_path / "audit" / res.pairs[0]["png"]
    assert png.is_file()
    from PIL import Image

    with Image.open(png) as im:
        assert im.size[0] > 2 * 96 and im.mode == "RGB"               # synthetic | nearest training image
    on_disk = json.loads((tmp_path / "audit" / "privacy.json").read_text())
    assert on_disk["extractor"]["name"] == "efficientnet-lite0" and on_disk["provenance"]["packages"]["torch"]


def test_explicit_test_set_and_no_copies(audit_sets, tmp_path):
    train, fake, _, cache = audit_sets
    fake_ds = ImageDataset(fake)
    writer = DatasetWriter(tmp_path / "only_new")
    for rec in fake_ds.records:
        if "new" in rec.file_name:
            writer.add(rec.file_name.split("/")[-1], fake_ds.image(rec))
    res = evaluate_privacy(dict(train=train, fake=tmp_path / "only_new", test=fake, out=tmp_path / "a2",
                                features="efficientnet-lite0", cache_dir=cache, max_pairs=0))
    assert res.reference.startswith("--test")
    assert res.pairs == [] and not (tmp_path / "a2" / "pairs").exists()
