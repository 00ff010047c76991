"""Features of a dataset directory, cached on disk by data hash + extractor + preprocessing.

A cache entry is ``<cache dir>/<key>.safetensors`` holding ``features`` (N, D) float32 and,
when the extractor has a classifier, ``logits``; its metadata names the extractor, the data
hash and the image files in row order. The key hashes the dataset's content hash
(:func:`synthmed.data.dataset.hash_dataset`: metadata and every image's bytes) together
with :meth:`FeatureExtractor.cache_key` (name, weights hash, preprocessing), so a changed
image, weight file or resize convention can never return stale features.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from synthmed.data.dataset import ImageDataset, hash_dataset
from synthmed.features.base import ExtractedFeatures, FeatureExtractor
from synthmed.utils.tmpfiles import mkstemp_for

logger = logging.getLogger(__name__)


def cache_key(data_hash: str, extractor: FeatureExtractor) -> str:
    """The cache file stem for a dataset hash and an extractor."""
    return hashlib.sha256(f"{data_hash}:{extractor.cache_key()}".encode()).hexdigest()[:40]


def _save(path: Path, feats: ExtractedFeatures, meta: dict[str, str]) -> None:
    from synthmed.utils.tmpfiles import save_safetensors

    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"features": feats.features.contiguous()}
    if feats.logits is not None:
        tensors["logits"] = feats.logits.contiguous()
    fd, tmp = mkstemp_for(path.parent, suffix=".safetensors")
    os.close(fd)
    try:
        save_safetensors(tensors, tmp, metadata=meta)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _load(path: Path, files: list[str]) -> ExtractedFeatures | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            if json.loads(meta.get("files", "[]")) != files:
                logger.warning("feature cache %s lists other files; recomputing", path)
                return None
            keys = set(fh.keys())
            feats = fh.get_tensor("features")
            logits = fh.get_tensor("logits") if "logits" in keys else None
    except Exception as err:  # noqa: BLE001 - a corrupt cache entry is recomputed, never fatal
        logger.warning("feature cache %s unreadable (%s); recomputing", path, err)
        return None
    return ExtractedFeatures(feats, logits)


def dataset_features(ds: ImageDataset, extractor: FeatureExtractor, *, cache_dir: Path | None,
                     use_cache: bool = True, batch_size: int = 32, progress: bool = False,
                     label: str = "features", data_hash: str | None = None) -> tuple[ExtractedFeatures, dict[str, Any]]:
    """Features of every image of ``ds`` in row order, from the cache when possible.

    Args:
        ds: The opened dataset.
        extractor: The feature extractor.
        cache_dir: Cache directory (None or ``use_cache=False``: no cache).
        use_cache: Read and write the cache.
        batch_size: Images per forward pass.
        progress: Show a progress bar.
        label: Progress-bar label.
        data_hash: The dataset hash if already known.

    Returns:
        The features and a record ``{"data_hash", "cache_file", "cache_hit"}``.
    """
    data_hash = data_hash or hash_dataset(ds.root)
    files = [r.file_name for r in ds.records]
    info: dict[str, Any] = {"data_hash": data_hash, "cache_file": None, "cache_hit": False}
    path = Path(cache_dir) / f"{cache_key(data_hash, extractor)}.safetensors" if (cache_dir and use_cache) else None
    if path is not None and path.is_file():
        cached = _load(path, files)
        if cached is not None and cached.features.shape == (len(files), extractor.dim):
            logger.info("%s: %d features from cache %s", label, len(files), path)
            info.update(cache_file=str(path), cache_hit=True)
            return cached, info
    feats = extractor.extract((ds.image(r) for r in ds.records), batch_size=batch_size, total=len(files),
                              progress=progress, desc=label)
    if path is not None:
        _save(path, feats, {"files": json.dumps(files), "extractor": extractor.name, "data_hash": data_hash,
                            "dataset": str(ds.root)})
        info["cache_file"] = str(path)
    return feats, info
