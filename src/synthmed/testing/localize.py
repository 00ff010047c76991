"""A tiny dataset with lesion masks for the localiser's tests: grey ellipses with bright discs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synthmed.data.dataset import DatasetWriter
from synthmed.findings.render import render_text
from synthmed.findings.schema import BrainMRIFindings


def write_lesion_dataset(root: str | Path, n: int = 36, size: int = 32, seed: int = 0) -> Path:
    """Write ``n`` images, two thirds with a bright disc (and its mask), one third healthy (empty mask).

    Patients are one image each; splits are 2/3 train, 1/6 val, 1/6 test (by index).
    """
    rng = np.random.default_rng(seed)
    writer = DatasetWriter(root)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    c = size / 2
    brain = ((xx - c) / (0.42 * size)) ** 2 + ((yy - c) / (0.46 * size)) ** 2 <= 1.0
    for i in range(n):
        img = np.where(brain, 90.0, 10.0)
        mask = np.zeros((size, size), bool)
        findings = BrainMRIFindings(tumor_present=False)
        if i % 3:
            hemi = "left" if i % 2 else "right"
            cx = c + (1 if hemi == "left" else -1) * rng.uniform(0.1, 0.25) * size
            cy = c + rng.uniform(-0.2, 0.2) * size
            r = rng.uniform(0.08, 0.14) * size
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r**2
            img = np.where(mask, 220.0, img)
            findings = BrainMRIFindings(tumor_present=True, hemisphere=hemi, shape="round", intensity="hyperintense")
        img = np.clip(np.rint(img + rng.normal(0, 5, img.shape)), 0, 255).astype(np.uint8)
        split = "train" if i % 6 < 4 else ("val" if i % 6 == 4 else "test")
        writer.add(f"img{i:03d}.png", img, mask=mask, findings=findings, text=render_text(findings), split=split,
                   patient_id=f"p{i:03d}", label="tumor" if findings.tumor_present else "no_tumor",
                   source="phantom", spacing_mm=1.0)
    return Path(root)


#: LocalizeTrainConfig overrides of a seconds-long run on :func:`write_lesion_dataset` data.
TINY_TRAIN = {"preset": "quick", "backbone": "scratch", "epochs": 8, "batch_size": 8, "progress": False,
              "threads": 2, "train_backbone_layers": 0,
              "scratch": {"epochs": 2, "image_size": 32, "patch_size": 4, "hidden_size": 32, "num_layers": 2,
                          "num_heads": 2, "text_hidden_size": 32, "text_layers": 1, "projection_dim": 16,
                          "batch_size": 8, "vocab_size": 300}}
