"""``synthmed evaluate privacy``: does the generator copy its training images?

For every synthetic image, the distance to its nearest training image is measured in a
feature space (any extractor of :mod:`synthmed.features`) and in pixel space (grayscale,
resized to ``pixel_size``, root-mean-square intensity difference in [0, 1]). These are
compared with the distances from real *held-out* images to the training set — what
"close to the training set" looks like for images the generator never saw:

* a synthetic image is a **likely copy** when, in either space, it is closer to a training
  image than the ``quantile`` of the held-out distances (default 0: closer than *every*
  held-out image — the criterion of Dar et al. / Akbar et al. for medical diffusion models);
* the **memorisation fraction** is the share of likely copies;
* the **data-copying test** (after Meehan et al., 2020) compares the whole distribution with a
  one-sided Mann-Whitney U test: a small p-value means synthetic images sit closer to the
  training set than held-out real images do.

Held-out images come from ``--test``; without it, from the training directory's rows with
``split == "test"`` (the rest are the training set); without those, from leave-one-out
distances inside the training set (a weaker reference, noted in the output).
Likely copies are saved side by side (synthetic | nearest training image) as PNGs.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field, ValidationError

from synthmed.data.dataset import ImageDataset
from synthmed.data.records import DatasetRecord
from synthmed.errors import ConfigError, DataError
from synthmed.evaluate.feature_options import FeatureExtractorOptions
from synthmed.results import Metric, PrivacyResult, write_result
from synthmed.results.intervals import wilson_interval
from synthmed.utils.configs import format_validation_error

logger = logging.getLogger(__name__)



class PrivacyConfig(FeatureExtractorOptions):
    """Options of :func:`evaluate_privacy` (CLI flags of ``synthmed evaluate privacy``)."""

    train: Path
    fake: Path
    out: Path
    test: Path | None = None
    pixel_size: int = Field(64, ge=4)
    quantile: float = Field(0.0, ge=0.0, lt=1.0)
    max_pairs: int = Field(50, ge=0)


def nearest_neighbours(query: torch.Tensor, ref: torch.Tensor, *, exclude_self: bool = False,
                       chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance from each query row to its nearest ``ref`` row, and that row's index.

    The neighbour is found on the expanded form ``|q|^2 + |r|^2 - 2 q.r`` (one matrix product per
    block); its distance is then computed again as ``|q - r|`` so that an exact copy reads 0 on any
    BLAS, instead of the expanded form's rounding residue.

    Args:
        query: (M, D) vectors.
        ref: (N, D) vectors.
        exclude_self: ``query`` is ``ref``: skip each row's own index (leave-one-out).
        chunk: Query rows per block (memory ~ chunk x N float64).
    """
    q, r = query.double(), ref.double()
    r_sq = (r * r).sum(1)
    dists, idx = np.empty(q.shape[0]), np.empty(q.shape[0], dtype=np.int64)
    for start in range(0, q.shape[0], chunk):
        qb = q[start:start + chunk]
        d2 = ((qb * qb).sum(1)[:, None] + r_sq[None, :] - 2 * qb @ r.T).clamp_min_(0)
        if exclude_self:
            rows = torch.arange(qb.shape[0])
            d2[rows, rows + start] = float("inf")
        arg = d2.argmin(1)
        dists[start:start + qb.shape[0]] = (qb - r[arg]).norm(dim=1).numpy()
        idx[start:start + qb.shape[0]] = arg.numpy()
    return dists, idx


def pixel_vectors(ds: ImageDataset, records: list[DatasetRecord], size: int) -> torch.Tensor:
    """(N, size*size) grayscale intensities in [0, 1] (16-bit not quantised), resized with antialiasing."""
    from synthmed.features.preprocess import prepare_batch

    rows = []
    for start in range(0, len(records), 64):
        imgs = [ds.image(r) for r in records[start:start + 64]]
        x = prepare_batch(imgs, size=size, resize="bilinear-antialias", uint8_input=False, scale=1.0, channels=1)
        rows.append(x.flatten(1))
    return torch.cat(rows)


def _summary(d: np.ndarray) -> dict[str, float]:
    return {"min": float(d.min()), "p01": float(np.quantile(d, 0.01)), "p05": float(np.quantile(d, 0.05)),
            "median": float(np.median(d)), "mean": float(d.mean()), "max": float(d.max())}


def _copy_test(fake_d: np.ndarray, ref_d: np.ndarray) -> dict[str, float]:
    from scipy.stats import mannwhitneyu

    u = mannwhitneyu(fake_d, ref_d, alternative="less")   # H1: synthetic distances are stochastically smaller
    # scipy's U counts pairs with fake > ref (ties half): 1 - U / (n m) = P(fake closer than reference)
    return {"u_statistic": float(u.statistic), "p_value": float(u.pvalue),
            "auc_fake_closer": float(1 - u.statistic / (len(fake_d) * len(ref_d)))}


def _save_pair(path: Path, fake_img: np.ndarray, train_img: np.ndarray) -> None:
    from PIL import Image

    from synthmed.viz import image_grid, to_rgb8

    a, b = to_rgb8(fake_img), to_rgb8(train_img)
    if b.shape != a.shape:
        b = np.asarray(Image.fromarray(b).resize((a.shape[1], a.shape[0]), Image.Resampling.BICUBIC))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image_grid([a, b], ncols=2, pad=4, fill=255)).save(path)


def _stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", Path(name).stem)[:60]


def _reference_split(train_ds: ImageDataset, test_ds: ImageDataset | None
                     ) -> tuple[list[DatasetRecord], ImageDataset | None, list[DatasetRecord] | None, str]:
    """(training rows, reference dataset, reference rows, description)."""
    if test_ds is not None:
        return train_ds.records, test_ds, test_ds.records, f"--test {test_ds.root}"
    test_rows = [r for r in train_ds.records if r.split == "test"]
    train_rows = [r for r in train_ds.records if r.split != "test"]
    if test_rows and len(train_rows) >= 1:
        return train_rows, train_ds, test_rows, "rows with split == 'test' of --train (the rest are the training set)"
    return train_ds.records, None, None, "leave-one-out distances inside --train (no held-out images: weaker)"


def evaluate_privacy(cfg: PrivacyConfig | dict[str, Any]) -> PrivacyResult:
    """Nearest-training-neighbour audit of a synthetic dataset; writes ``out/privacy.json`` and pair PNGs."""
    from synthmed.data.dataset import hash_dataset
    from synthmed.features.paths import feature_cache_dir
    from synthmed.utils.provenance import provenance

    if not isinstance(cfg, PrivacyConfig):
        try:
            cfg = PrivacyConfig(**cfg)
        except ValidationError as err:
            raise ConfigError(f"invalid privacy options: {format_validation_error(err)}") from err
    train_ds, fake_ds = ImageDataset(cfg.train), ImageDataset(cfg.fake)
    test_ds = ImageDataset(cfg.test) if cfg.test is not None else None
    train_rows, ref_ds, ref_rows, ref_desc = _reference_split(train_ds, test_ds)
    if len(train_rows) < (1 if ref_rows else 2) or len(fake_ds) < 1:
        raise DataError(f"privacy audit needs training images and synthetic images; found {len(train_rows)} "
                        f"training and {len(fake_ds)} synthetic", cfg.train)
    extractor = cfg.build_extractor()
    from synthmed.evaluate.feature_cache import dataset_features

    cache_dir = cfg.cache_dir or feature_cache_dir()
    all_train, _ = dataset_features(train_ds, extractor, cache_dir=cache_dir, use_cache=cfg.use_cache,
                                    batch_size=cfg.batch_size, progress=cfg.progress, label="train features")
    pos = {r.file_name: i for i, r in enumerate(train_ds.records)}
    spaces: dict[str, dict[str, torch.Tensor]] = {"features": {}, "pixels": {}}
    spaces["features"]["train"] = all_train.features[[pos[r.file_name] for r in train_rows]]
    spaces["pixels"]["train"] = pixel_vectors(train_ds, train_rows, cfg.pixel_size)
    fake_f, _ = dataset_features(fake_ds, extractor, cache_dir=None, batch_size=cfg.batch_size,
                                 progress=cfg.progress, label="synthetic features")
    spaces["features"]["fake"] = fake_f.features
    spaces["pixels"]["fake"] = pixel_vectors(fake_ds, fake_ds.records, cfg.pixel_size)
    if ref_ds is not None and ref_ds is test_ds:
        test_f, _ = dataset_features(ref_ds, extractor, cache_dir=cache_dir, use_cache=cfg.use_cache,
                                     batch_size=cfg.batch_size, progress=cfg.progress, label="test features")
        spaces["features"]["ref"] = test_f.features
    elif ref_ds is not None:
        spaces["features"]["ref"] = all_train.features[[pos[r.file_name] for r in ref_rows]]
    if ref_ds is not None:
        spaces["pixels"]["ref"] = pixel_vectors(ref_ds, ref_rows, cfg.pixel_size)

    per_space: dict[str, Any] = {}
    notes: list[str] = [] if ref_rows is not None else [f"reference: {ref_desc}"]
    nn: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    flags = np.zeros(len(fake_ds), dtype=bool)
    for space, sets in spaces.items():
        nn[space] = nearest_neighbours(sets["fake"], sets["train"])
        if "ref" in sets:
            ref_d, _ = nearest_neighbours(sets["ref"], sets["train"])
        else:
            ref_d, _ = nearest_neighbours(sets["train"], sets["train"], exclude_self=True)
        threshold = float(np.quantile(ref_d, cfg.quantile))
        if threshold <= 1e-9:
            notes.append(f"{space}: a held-out image duplicates a training image (distance 0): the split leaks and "
                         "the copy threshold is 0, so only closer-than-identical images could be flagged")
        flagged = nn[space][0] < threshold
        flags |= flagged
        per_space[space] = {
            "threshold": threshold,
            "flagged": int(flagged.sum()),
            "fraction_flagged": float(flagged.mean()),
            "fraction_below_reference_median": float((nn[space][0] < np.median(ref_d)).mean()),
            "synthetic_to_train": _summary(nn[space][0]),
            "reference_to_train": _summary(ref_d),
            "copy_test": _copy_test(nn[space][0], ref_d) if len(ref_d) > 1 else None,
        }
    per_space["pixels"]["units"] = f"RMS intensity difference in [0, 1] at {cfg.pixel_size}x{cfg.pixel_size} grayscale"
    per_space["features"]["units"] = f"Euclidean distance between {extractor.name} features"

    images = []
    for i, rec in enumerate(fake_ds.records):
        images.append({
            "file_name": rec.file_name,
            "nearest_train_features": train_rows[int(nn["features"][1][i])].file_name,
            "distance_features": float(nn["features"][0][i]),
            "nearest_train_pixels": train_rows[int(nn["pixels"][1][i])].file_name,
            "distance_pixels": float(nn["pixels"][0][i]),
            "likely_copy": bool(flags[i]),
        })
    pairs = []
    order = sorted(np.flatnonzero(flags), key=lambda i: nn["pixels"][0][i])
    for rank, i in enumerate(order[:cfg.max_pairs]):
        train_rec = train_rows[int(nn["pixels"][1][i])]
        name = f"{rank:03d}_{_stem(fake_ds.records[i].file_name)}__{_stem(train_rec.file_name)}.png"
        _save_pair(cfg.out / "pairs" / name, fake_ds.image(fake_ds.records[i]), train_ds.image(train_rec))
        pairs.append({"png": f"pairs/{name}", "synthetic": fake_ds.records[i].file_name,
                      "train": train_rec.file_name, "distance_pixels": float(nn["pixels"][0][i])})

    copies = int(flags.sum())
    result = PrivacyResult(
        memorisation=Metric(value=float(flags.mean()), n=len(fake_ds), ci95=wilson_interval(copies, len(fake_ds)),
                            detail={"likely_copies": copies}),
        n_synthetic=len(fake_ds),
        n_train=len(train_rows),
        n_reference=len(ref_rows) if ref_rows is not None else len(train_rows),
        reference=ref_desc,
        rule=(f"likely copy: nearest-training distance below the {cfg.quantile:g} quantile of reference-to-train "
              "distances in the feature space or in pixel space"),
        spaces=per_space,
        warnings=notes,
        extractor=extractor.describe(),
        pairs=pairs,
        images=images,
        data={"train": {"path": str(train_ds.root), "data_hash": hash_dataset(train_ds.root)},
              "fake": {"path": str(fake_ds.root), "data_hash": hash_dataset(fake_ds.root)},
              "test": None if test_ds is None else {"path": str(test_ds.root),
                                                    "data_hash": hash_dataset(test_ds.root)}},
        provenance=provenance(config=cfg.model_dump(mode="json")),
    )
    for note in notes:
        logger.warning("privacy: %s", note)
    if flags.any():
        logger.warning("privacy: %d of %d synthetic images (%.1f%%) look like copies of training images; pairs in %s",
                       flags.sum(), len(fake_ds), 100 * flags.mean(), cfg.out / "pairs")
    write_result(cfg.out / PrivacyResult.FILE, result)
    return result
