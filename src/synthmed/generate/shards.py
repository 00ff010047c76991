"""Sharded generation: K processes (a job array, or ``accelerate launch``) split one run, then one merge.

The run's fixed batches (index ranges of ``batch_size`` images) are dealt round-robin: shard ``i`` of
``K`` makes batches ``i, i + K, ...`` into ``OUT/shards/<i>-of-<K>/``, a dataset of its own (its own
lock, so shards run side by side, and its own rows, so a killed shard resumes alone). Every image
keeps its per-index seed and its batch, so the merged dataset is byte for byte the one a single
process writes with the same batch size. :func:`merge_shards` checks that every shard is complete
and made with the same settings, moves the images into ``OUT/images/`` and writes one
``metadata.jsonl`` in index order.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from synthmed.data.dataset import read_records, write_records
from synthmed.errors import ConfigError, DataError
from synthmed.utils import outdir
from synthmed.utils.provenance import write_json_atomic

SHARDS_DIR = "shards"


def shard_dir(out: str | Path, shard: int, num_shards: int) -> Path:
    return Path(out) / SHARDS_DIR / f"{shard:03d}-of-{num_shards:03d}"


def fixed_batches(total: int, batch_size: int) -> list[list[int]]:
    """The run's batches: consecutive index ranges of ``batch_size`` (the last may be shorter)."""
    return [list(range(i, min(i + batch_size, total))) for i in range(0, total, batch_size)]


def shard_batches(batches: list[list[int]], shard: int, num_shards: int) -> list[list[int]]:
    """The batches shard ``shard`` of ``num_shards`` makes (round-robin, so shards finish together)."""
    return batches[shard::num_shards]


def launched_shard() -> tuple[int, int] | None:
    """(process index, number of processes) under a distributed launch (``accelerate launch --multi_gpu``,
    torchrun), else None."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return None
    return int(os.environ.get("RANK", "0") or 0), world


def launch_state():
    """accelerate's view of a distributed launch: this process's device, and a barrier.

    Without CUDA a multi-process launch (``accelerate launch --multi_gpu``, torchrun) runs over gloo;
    accelerate picks that only when told "cpu".
    """
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def merge_shards(out: str | Path, run_file: str, name_of: Callable[[int], str]) -> Path:
    """Merge the complete shards under ``out/shards`` into the dataset ``out``.

    Args:
        run_file: The name of each shard's run record (``generate.json``).
        name_of: The file name of image ``i``.

    Raises:
        DataError: nothing to merge, a shard missing or incomplete (naming it and how to finish it), or shards
            made with different settings.
    """
    out = Path(out)
    root = out / SHARDS_DIR
    dirs = sorted(p for p in root.glob("*-of-*") if p.is_dir()) if root.is_dir() else []
    if not dirs:
        raise DataError("nothing to merge: no shards here (run `synthmed generate --num-shards K --shard i` for "
                        "each i first; an already merged run has none)", out)
    records = {d: json.loads((d / run_file).read_text(encoding="utf-8")) if (d / run_file).is_file() else None
               for d in dirs}
    first = next((r for r in records.values() if r), None)
    if first is None:
        raise DataError("no shard has started writing yet", root)
    k = first["num_shards"]
    for d, rec in records.items():
        if rec is None:
            raise DataError("this shard has no run record: it never started; rerun it", d)
        for key in ("identity", "num_shards", "batch_size", "num_images"):
            if rec.get(key) != first.get(key):
                raise DataError(f"this shard was made with other settings than {dirs[0].name} ({key} differs); "
                                "every shard of a run needs the same settings", d)
    present = {int(d.name.split("-of-")[0]) for d in dirs}
    missing = sorted(set(range(k)) - present)
    if missing:
        raise DataError(f"shard {missing[0]} of {k} has not run (missing: {missing}); run it with --num-shards {k} "
                        f"--shard {missing[0]}", root)
    total = first["num_images"]
    names = [name_of(i) for i in range(total)]
    batches = fixed_batches(total, first["batch_size"])
    rows = {}
    for d in dirs:
        shard = int(d.name.split("-of-")[0])
        have = {Path(r.file_name).name: r for r in read_records(d, check_files=False)}
        wanted = [names[i] for b in shard_batches(batches, shard, k) for i in b]
        done = [n for n in wanted if n in have]
        if len(done) < len(wanted):
            raise DataError(f"shard {shard} of {k} has {len(done)} of its {len(wanted)} images: rerun it with "
                            f"--num-shards {k} --shard {shard} (it resumes), then merge", d)
        rows.update({n: (d, have[n]) for n in wanted})
    with outdir.exclusive(out):
        for d, rec in rows.values():
            for name in filter(None, (rec.file_name, rec.mask_file_name)):  # the image and, if any, its mask
                src, dst = d / name, out / name
                if src.is_file():
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(src, dst)
                elif not dst.is_file():  # moved by a merge that stopped before writing the rows
                    raise DataError(f"{name} is neither in its shard nor merged", d)
        write_records(out, [rows[n][1] for n in names])
        merged = {k2: v for k2, v in first.items() if k2 not in ("shard",)}
        write_json_atomic(out / run_file, {**merged, "merged_from_shards": k})
        provenance = dirs[0] / "synthmed.json"
        if provenance.is_file():
            shutil.copyfile(provenance, out / "synthmed.json")
        shutil.rmtree(root)
    return out


def check_unsharded_out(out: Path) -> None:
    """Refuse a one-process run into a folder that holds a sharded run's shards."""
    if (out / SHARDS_DIR).is_dir():
        raise ConfigError(f"{out}: holds the shards of a sharded run; merge them with `synthmed generate --merge "
                          f"{out}`, or finish them with --num-shards and --shard")
