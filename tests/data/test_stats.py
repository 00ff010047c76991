"""Dataset statistics and near-duplicate detection with the DCT perceptual hash."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from synthmed.data import DatasetWriter
from synthmed.data.stats import dataset_stats, hamming, near_duplicate_pairs, phash, stats_tables
from synthmed.errors import ConfigError, DataError
from synthmed.findings import BrainMRIFindings


def _scan(seed: int, size: int = 64) -> np.ndarray:
    """A smooth random 'scan' (uint8): unrelated seeds give unrelated low-frequency structure."""
    noise = np.random.default_rng(seed).random((size, size))
    smooth = gaussian_filter(noise, sigma=4)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return (smooth * 255).astype(np.uint8)


def test_phash_is_robust_to_noise_brightness_depth_and_size_but_tells_scans_apart():
    base = _scan(0)
    noisy = np.clip(base + np.random.default_rng(1).normal(0, 4, base.shape), 0, 255).astype(np.uint8)
    brighter = np.clip(base.astype(int) * 9 // 10 + 20, 0, 255).astype(np.uint8)
    deeper = base.astype(np.uint16) * 257  # the same image as 16-bit
    resized = np.asarray(Image.fromarray(base).resize((48, 48), Image.Resampling.BILINEAR))
    h = phash(base)
    assert 0 <= h < 2**64
    assert hamming(h, phash(deeper)) == 0
    for variant in (noisy, brighter, resized):
        assert hamming(h, phash(variant)) <= 4
    others = [hamming(h, phash(_scan(s))) for s in range(1, 30)]
    assert min(others) > 10 and 24 < np.mean(others) < 40  # unrelated images: ~32 of 64 bits differ


def test_near_duplicate_pairs_only_across_groups():
    hashes = [0b1111, 0b1110, 0b1111, 2**63]
    pairs = near_duplicate_pairs(hashes, ["train", "test", "train", None], threshold=1)
    assert pairs == [(0, 1, 1), (1, 2, 1)]  # (0, 2) share a split; row 3 has none


@pytest.fixture
def stats_dir(tmp_path) -> Path:
    """train: 5 scans of 3 patients; test: 3 scans, one a re-exported (noisy, brighter) train scan."""
    root = tmp_path / "ds"
    writer = DatasetWriter(root)
    glioma = BrainMRIFindings(tumor_present=True, tumor_type="glioma", size_mm=25.0)
    healthy = BrainMRIFindings(tumor_present=False)
    rows = [("train", "P1", 1, glioma), ("train", "P1", 2, glioma), ("train", "P2", 3, healthy),
            ("train", "P3", 4, glioma), ("train", None, 5, healthy),
            ("test", "P4", 6, glioma), ("test", "P5", 7, healthy), ("test", "P5", 3, healthy)]
    for i, (split, patient, seed, findings) in enumerate(rows):
        image = _scan(seed)
        if i == 7:  # the duplicate of row 2 (seed 3), slightly altered
            image = np.clip(image.astype(int) + 10 + np.random.default_rng(9).integers(-3, 4, image.shape), 0, 255)
            image = image.astype(np.uint8)
        mask = np.zeros(image.shape, bool) if findings.tumor_present else None
        label = findings.tumor_type or "notumor"
        writer.add(f"s{i}.png", image, mask=mask, split=split, patient_id=patient, label=label, findings=findings)
    writer.add("odd.png", np.zeros((32, 48), np.uint16), split="val", patient_id="P1", label="notumor",
               findings=healthy)
    return root


def test_dataset_stats_counts(stats_dir):
    stats = dataset_stats(stats_dir, progress=False)
    assert stats["rows"] == 9
    assert stats["labels"] == {"glioma": 4, "notumor": 5}
    assert stats["splits"] == {"test": 3, "train": 5, "val": 1}
    assert stats["labels_by_split"]["test"] == {"glioma": 1, "notumor": 2}
    assert stats["findings"]["tumor_present"] == {"false": 5, "true": 4}
    assert stats["findings"]["tumor_type"] == {"(none)": 5, "glioma": 4}
    assert stats["findings_numeric"]["size_mm"] == {"n": 4, "min": 25.0, "mean": 25.0, "max": 25.0}
    assert stats["patients"] == {"total": 5, "per_split": {"test": 2, "train": 3, "val": 1},
                                 "rows_without_patient_id": 1, "in_several_splits": ["P1"]}
    assert stats["images"] == {"sizes": {"64x64": 8, "48x32": 1}, "dtypes": {"uint16": 1, "uint8": 8},
                               "channels": {"1": 9}, "with_mask": 4}


def test_near_duplicates_across_splits_are_found_and_distinct_images_are_not(stats_dir):
    stats = dataset_stats(stats_dir, progress=False)
    dupes = stats["near_duplicates"]
    assert dupes["count"] == 1
    pair = dupes["pairs"][0]
    assert {pair["a"], pair["b"]} == {"images/s2.png", "images/s7.png"}
    assert {pair["split_a"], pair["split_b"]} == {"train", "test"} and pair["distance"] <= 6
    everything = dataset_stats(stats_dir, hash_threshold=64, max_pairs=5, progress=False)["near_duplicates"]
    assert everything["count"] == 5 * 3 + 5 * 1 + 3 * 1 and len(everything["pairs"]) == 5  # all cross-split pairs
    off = dataset_stats(stats_dir, near_duplicates=False, progress=False)["near_duplicates"]
    assert off == {"threshold": 6, "checked": False, "count": 0, "pairs": []}


def test_tables_render_and_bad_input(stats_dir, tmp_path):
    from rich.console import Console

    console = Console(record=True, width=120)
    for table in stats_tables(dataset_stats(stats_dir, progress=False)):
        console.print(table)
    text = console.export_text()
    assert "labels by split" in text and "near-duplicates across splits (Hamming <= 6): 1" in text
    with pytest.raises(ConfigError, match="hash_threshold must be between 0 and 64"):
        dataset_stats(stats_dir, hash_threshold=65)
    (stats_dir / "images" / "s3.png").unlink()
    with pytest.raises(DataError, match="metadata.jsonl, line 4: image 'images/s3.png' does not exist"):
        dataset_stats(stats_dir, progress=False)
    with pytest.raises(DataError, match="dataset directory not found"):
        dataset_stats(tmp_path / "nowhere")
