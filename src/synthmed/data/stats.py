"""What a dataset directory holds: counts, patients, image formats and leaks across splits.

:func:`dataset_stats` returns a JSON-ready dict; :func:`stats_tables` renders it as rich
tables. Near-duplicate images across splits (the same slice exported twice, a patient
imported under two ids) are found with a DCT perceptual hash, :func:`phash`.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from synthmed.data.dataset import read_records
from synthmed.data.imageio import load_image
from synthmed.errors import ConfigError

logger = logging.getLogger(__name__)

NONE = "(none)"
HASH_BITS = 64


def phash(image: np.ndarray, hash_size: int = 8, highfreq_factor: int = 4) -> int:
    """DCT perceptual hash of an image, as a ``hash_size**2``-bit integer.

    Implements the DCT-based hash of Zauner (2010), "Implementation and Benchmarking of
    Perceptual Image Hash Functions": reduce to a (N, N) luminance image with
    N = ``hash_size * highfreq_factor`` (32), take its 2-D DCT-II, keep the lowest
    ``hash_size`` x ``hash_size`` frequencies, and set a bit where a coefficient exceeds the
    median of those coefficients without the DC term. Invariant to brightness scaling and
    offset, robust to small noise, resizing and recompression.

    Args:
        image: (H, W) or (H, W, 3) array of any numeric dtype (8- or 16-bit alike).
        hash_size: Side of the kept low-frequency block; the hash has ``hash_size**2`` bits.
        highfreq_factor: Ratio of the reduced image side to ``hash_size``.

    Returns:
        The hash; compare two with :func:`hamming`.
    """
    from PIL import Image
    from scipy.fft import dctn

    gray = np.asarray(image, dtype=np.float32)
    if gray.ndim == 3:
        gray = gray[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 luma
    n = hash_size * highfreq_factor
    small = np.asarray(Image.fromarray(np.ascontiguousarray(gray)).resize((n, n), Image.Resampling.LANCZOS),
                       dtype=np.float64)
    low = dctn(small, type=2, norm="ortho")[:hash_size, :hash_size].ravel()
    bits = low > np.median(low[1:])
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two hashes."""
    return (a ^ b).bit_count()


def near_duplicate_pairs(hashes: list[int], groups: list[str | None], threshold: int
                         ) -> list[tuple[int, int, int]]:
    """Index pairs ``(i, j, distance)`` with Hamming distance <= ``threshold`` in different groups.

    Rows whose group is None are not compared. O(n^2) XOR-popcounts, vectorised per row.
    """
    h = np.array(hashes, dtype=np.uint64)
    names = sorted({x for x in groups if x is not None})
    g = np.array([names.index(x) if x is not None else -1 for x in groups], dtype=np.int64)
    pairs = []
    for i in np.nonzero(g >= 0)[0][:-1]:
        later = slice(i + 1, None)
        dist = np.bitwise_count(h[later] ^ h[i])
        hits = np.nonzero((dist <= threshold) & (g[later] != g[i]) & (g[later] >= 0))[0]
        pairs.extend((int(i), int(i) + 1 + int(j), int(dist[j])) for j in hits)
    return pairs


def _count_findings(findings: list[dict[str, Any]]) -> tuple[dict[str, dict[str, int]], dict[str, Any]]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    numeric: dict[str, list[float]] = defaultdict(list)
    for f in findings:
        for key, value in f.items():
            if isinstance(value, bool) or value is None or isinstance(value, str):
                counts[key][NONE if value is None else str(value).lower()] += 1
            elif isinstance(value, (int, float)):
                numeric[key].append(float(value))
            elif isinstance(value, list):
                for v in value or [NONE]:
                    counts[key][str(v)] += 1
            elif isinstance(value, dict):
                for k, v in value.items():
                    counts[f"{key}.{k}"][str(v)] += 1
    summary = {k: {"n": len(v), "min": min(v), "mean": float(np.mean(v)), "max": max(v)}
               for k, v in numeric.items()}
    return {k: dict(sorted(c.items())) for k, c in counts.items()}, summary


def dataset_stats(root: str | Path, *, hash_threshold: int = 6, near_duplicates: bool = True,
                  max_pairs: int = 1000, progress: bool = True) -> dict[str, Any]:
    """Describe a dataset directory.

    Args:
        root: The dataset directory.
        hash_threshold: Largest Hamming distance (of 64 bits) between the perceptual
            hashes of two images called near-duplicates. Unrelated images are ~32 apart;
            slices of one anatomy share low-frequency structure, so keep this small.
        near_duplicates: Hash every image and look for near-duplicates across splits.
        max_pairs: Most pairs listed (all are counted).
        progress: Show a progress bar while reading the images.

    Returns:
        A JSON-ready dict with ``rows``, ``labels``, ``splits``, ``labels_by_split``,
        ``findings`` (value counts per attribute), ``findings_numeric`` (min/mean/max),
        ``patients`` (total, per split, without id, in several splits), ``images`` (sizes,
        dtypes, channels, masks) and ``near_duplicates`` (threshold, count, pairs).

    Raises:
        ConfigError: ``hash_threshold`` outside [0, 64].
        DataError: the metadata is invalid or an image is missing or unreadable.
    """
    from tqdm.auto import tqdm

    if not 0 <= hash_threshold <= HASH_BITS:
        raise ConfigError(f"hash_threshold must be between 0 and {HASH_BITS}, got {hash_threshold}")
    root = Path(root)
    records = read_records(root, check_files=True)
    splits = [r.split or NONE for r in records]
    labels = [r.label if r.label is not None else NONE for r in records]
    by_split: dict[str, Counter[str]] = defaultdict(Counter)
    for s, label in zip(splits, labels, strict=True):
        by_split[s][label] += 1

    patient_splits: dict[str, set[str]] = defaultdict(set)
    for r in records:
        if r.patient_id:
            patient_splits[r.patient_id].add(r.split or NONE)
    per_split = Counter(s for ss in patient_splits.values() for s in ss)
    findings, findings_numeric = _count_findings([r.findings.to_dict() for r in records if r.findings])

    sizes: Counter[str] = Counter()
    dtypes: Counter[str] = Counter()
    channels: Counter[str] = Counter()
    hashes: list[int] = []
    for rec in tqdm(records, desc="stats", unit="img", disable=not progress):
        img = load_image(root / rec.file_name)
        sizes[f"{img.shape[1]}x{img.shape[0]}"] += 1
        dtypes[str(img.dtype)] += 1
        channels[str(1 if img.ndim == 2 else img.shape[2])] += 1
        if near_duplicates:
            hashes.append(phash(img))

    dupes: dict[str, Any] = {"threshold": hash_threshold, "checked": near_duplicates, "count": 0, "pairs": []}
    if near_duplicates:
        found = near_duplicate_pairs(hashes, [r.split for r in records], hash_threshold)
        found.sort(key=lambda p: (p[2], records[p[0]].file_name))
        dupes["count"] = len(found)
        dupes["pairs"] = [{"a": records[i].file_name, "b": records[j].file_name, "split_a": records[i].split,
                           "split_b": records[j].split, "distance": d} for i, j, d in found[:max_pairs]]
        if found:
            logger.warning("%d near-duplicate image pair(s) across splits (Hamming distance <= %d)",
                           len(found), hash_threshold)
    return {
        "root": str(root),
        "rows": len(records),
        "labels": dict(sorted(Counter(labels).items())),
        "splits": dict(sorted(Counter(splits).items())),
        "labels_by_split": {s: dict(sorted(c.items())) for s, c in sorted(by_split.items())},
        "findings": findings,
        "findings_numeric": findings_numeric,
        "patients": {
            "total": len(patient_splits),
            "per_split": dict(sorted(per_split.items())),
            "rows_without_patient_id": sum(1 for r in records if not r.patient_id),
            "in_several_splits": sorted(p for p, ss in patient_splits.items() if len(ss) > 1),
        },
        "images": {
            "sizes": dict(sizes.most_common()),
            "dtypes": dict(sorted(dtypes.items())),
            "channels": dict(sorted(channels.items())),
            "with_mask": sum(1 for r in records if r.mask_file_name),
        },
        "near_duplicates": dupes,
    }


def stats_tables(stats: dict[str, Any]) -> list[Any]:
    """Rich tables of a :func:`dataset_stats` result (for a terminal)."""
    from rich.table import Table

    def counts_table(title: str, rows: dict[str, dict[str, Any]], columns: list[str]) -> Table:
        table = Table(title=title, title_justify="left")
        table.add_column("")
        for c in columns:
            table.add_column(c, justify="right")
        for name, row in rows.items():
            table.add_row(name, *[str(row.get(c, 0)) for c in columns])
        return table

    splits = list(stats["splits"])
    labels = {label: {s: stats["labels_by_split"].get(s, {}).get(label, 0) for s in splits}
              for label in stats["labels"]}
    labels["total"] = dict(stats["splits"])
    tables = [counts_table(f"{stats['root']}: {stats['rows']} rows — labels by split", labels, splits)]

    p = stats["patients"]
    patients = Table(title="patients", title_justify="left")
    for col in ("total", *p["per_split"], "rows without id", "in several splits"):
        patients.add_column(col, justify="right")
    patients.add_row(str(p["total"]), *[str(v) for v in p["per_split"].values()],
                     str(p["rows_without_patient_id"]), str(len(p["in_several_splits"])))
    tables.append(patients)

    findings = Table(title="findings", title_justify="left")
    findings.add_column("attribute")
    findings.add_column("values")
    for attr, counts in stats["findings"].items():
        findings.add_row(attr, ", ".join(f"{v}: {n}" for v, n in counts.items()))
    for attr, s in stats["findings_numeric"].items():
        findings.add_row(attr, f"n={s['n']} min={s['min']:g} mean={s['mean']:.1f} max={s['max']:g}")
    if findings.row_count:
        tables.append(findings)

    im = stats["images"]
    images = Table(title="images", title_justify="left")
    images.add_column("")
    images.add_column("counts")
    images.add_row("sizes", ", ".join(f"{k}: {v}" for k, v in list(im["sizes"].items())[:8]))
    images.add_row("dtypes", ", ".join(f"{k}: {v}" for k, v in im["dtypes"].items()))
    images.add_row("channels", ", ".join(f"{k}: {v}" for k, v in im["channels"].items()))
    images.add_row("with mask", str(im["with_mask"]))
    tables.append(images)

    d = stats["near_duplicates"]
    if d["checked"]:
        dup = Table(title=f"near-duplicates across splits (Hamming <= {d['threshold']}): {d['count']}",
                    title_justify="left")
        for col in ("a", "split", "b", "split", "distance"):
            dup.add_column(col, overflow="fold")  # full file names, wrapped
        for pair in d["pairs"][:20]:
            dup.add_row(pair["a"], str(pair["split_a"]), pair["b"], str(pair["split_b"]),
                        str(pair["distance"]))
        tables.append(dup)
    return tables
