"""Tiny datasets, text encoders and configs that run the real LDM code paths in seconds.

Used by the test suite and by smoke runs; nothing here is downloaded.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np

from synthmed.data.dataset import DatasetWriter
from synthmed.findings.render import render_text
from synthmed.findings.schema import HEMISPHERES, SHAPES, SIZE_CATEGORIES, BrainMRIFindings


def disc_slice(size: int, hemisphere: str | None, radius: float,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A (size, size) uint8 'slice' (a grey ellipse with a bright disc in one half) and its disc's bool mask.

    Radiological convention: the patient's left is on the image's right.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    c = size / 2
    brain = ((xx - c) / (0.42 * size)) ** 2 + ((yy - c) / (0.46 * size)) ** 2 <= 1.0
    img = np.where(brain, 90.0, 10.0)
    mask = np.zeros((size, size), bool)
    if hemisphere is not None:
        cx = c + (0.2 * size if hemisphere == "left" else -0.2 * size)
        cy = c + rng.uniform(-0.15, 0.15) * size
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= radius**2
        img = np.where(mask, 230.0, img)
    img = img + rng.normal(0, 4, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), mask


def disc_image(size: int, hemisphere: str | None, radius: float, rng: np.random.Generator) -> np.ndarray:
    """The image of :func:`disc_slice`."""
    return disc_slice(size, hemisphere, radius, rng)[0]


def write_disc_dataset(root: str | Path, n: int = 16, size: int = 32, seed: int = 0,
                       paraphrases: bool = True, captions: bool = True, masks: bool = False) -> Path:
    """Write a captioned toy dataset: tumour absent / left / right, small or large discs (with lesion masks)."""
    rng = np.random.default_rng(seed)
    writer = DatasetWriter(root)
    kinds = [None, "left", "right"]
    for i in range(n):
        hemi = kinds[i % 3]
        size_cat = "small" if (i // 3) % 2 == 0 else "large"
        radius = size * (0.08 if size_cat == "small" else 0.14)
        if hemi is None:
            f = BrainMRIFindings(tumor_present=False)
        else:
            f = BrainMRIFindings(tumor_present=True, hemisphere=hemi, size_category=size_cat, shape="round",
                                 intensity="hyperintense")
        text = render_text(f)
        para = [text.replace("Axial T1 contrast-enhanced MRI. ", "Contrast T1 axial slice. ")] if paraphrases else []
        fields = {"text": text, "paraphrases": para} if captions else {}
        image, mask = disc_slice(size, hemi, radius, rng)
        writer.add(f"img{i:03d}.png", image, mask=mask if masks else None, findings=f, split="train",
                   patient_id=f"p{i:03d}", source="phantom", **fields)
    return Path(root)


def caption_vocabulary() -> list[str]:
    """Every lower-cased word and punctuation mark :func:`render_text` writes for brain MRI."""
    words: set[str] = set()
    texts = [render_text(BrainMRIFindings(tumor_present=False))]
    for hemi, size, shape in itertools.product(HEMISPHERES, SIZE_CATEGORIES, SHAPES):
        texts.append(render_text(BrainMRIFindings(tumor_present=True, hemisphere=hemi, size_category=size,
                                                  shape=shape, intensity="ring-enhancing", lobe="frontal",
                                                  orientation="oblique", edema=True, mass_effect=False)))
    extra = ("hyperintense hypointense isointense parietal temporal occipital horizontally vertically glioma "
             "meningioma pituitary contrast slice axial").split()
    for t in texts:
        words.update(re.findall(r"[a-z0-9]+|[^\sa-z0-9]", t.lower()))  # BERT's basic split
    words.update(extra)
    return sorted(words)


def write_tiny_text_encoder(out: str | Path, hidden_size: int = 32, max_length: int = 32, seed: int = 0) -> Path:
    """Save a 2-layer random BERT and a word-level tokenizer of the caption vocabulary to ``out``."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + caption_vocabulary()
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = BertTokenizer(vocab_file=str(out / "vocab.txt"), model_max_length=max_length)
    torch.manual_seed(seed)
    model = BertModel(BertConfig(vocab_size=len(vocab), hidden_size=hidden_size, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=2 * hidden_size,
                                 max_position_embeddings=max(64, max_length)))
    tok.save_pretrained(out)
    model.save_pretrained(out, safe_serialization=True)
    return out


def tiny_train_config(data: str | Path, out: str | Path, text_encoder: str | Path, **overrides):
    """An :class:`~synthmed.train.ldm.LDMTrainConfig` of a ~0.1 M-parameter LDM for 32 px data."""
    from synthmed.train.ldm.config import LDMTrainConfig
    from synthmed.utils.configs import deep_merge

    base = {
        "data": str(data), "out": str(out), "text_encoder": str(text_encoder), "resolution": 32,
        "max_text_length": 32, "progress": False, "num_samples": 3, "sample_steps": 3,
        "checkpoint_every": 5, "calibration_steps": 2,
        "autoencoder": {"model": {"block_out_channels": [8, 8], "norm_num_groups": 4, "latent_channels": 4},
                        "max_steps": 4, "batch_size": 4, "crop_size": 16, "warmup_steps": 2},
        "unet": {"model": {"block_out_channels": [16, 32], "attention": [False, True], "norm_num_groups": 8,
                           "attention_heads": 2},
                 "max_steps": 6, "batch_size": 4, "warmup_steps": 2},
    }
    return LDMTrainConfig.model_validate(deep_merge(base, overrides, skip_none=False))
