"""A stand-in "generated" dataset for evaluating the evaluation, without a diffusion model.

A phantom drawn with another seed plays the role of a generator's output: its rows get
``requested_findings`` (what a prompt would have asked for), ``prompt`` and a
``generated`` source, and lose their split (generated images are all training material).
With ``requested="truth"`` it is a *perfect* generator — every image shows exactly what was
requested — so adherence must be near the judge's own accuracy and TSTR near TRTR. With a
corruption (``flip-hemisphere``, ``flip-presence``, ``shuffle``) it is a generator that
ignores part of its prompt, and the evaluations must say so: tests use both.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Literal

from synthmed.data.dataset import read_records, write_records
from synthmed.data.phantom import PhantomConfig, generate_phantom
from synthmed.data.records import DatasetRecord
from synthmed.errors import ConfigError
from synthmed.findings.render import render_text
from synthmed.findings.schema import BrainMRIFindings
from synthmed.utils.outdir import first_argument, writes_to

Requested = Literal["truth", "flip-hemisphere", "flip-presence", "shuffle"]
REQUESTED_MODES: tuple[str, ...] = ("truth", "flip-hemisphere", "flip-presence", "shuffle")


def _flip_hemisphere(f: BrainMRIFindings) -> BrainMRIFindings:
    if not f.tumor_present or f.hemisphere is None:
        return f
    return f.model_copy(update={"hemisphere": "right" if f.hemisphere == "left" else "left"})


def _flip_presence(f: BrainMRIFindings) -> BrainMRIFindings:
    if f.tumor_present:
        return BrainMRIFindings(tumor_present=False)
    return BrainMRIFindings(tumor_present=True, hemisphere="left", lobe="frontal", size_mm=30.0, shape="round",
                            intensity="hyperintense")


@writes_to(first_argument("root"))
def set_requested(root: str | Path, requested: str = "truth", *, seed: int = 0) -> None:
    """Give every row of the phantom at ``root`` ``requested_findings`` derived from its true findings."""
    if requested not in REQUESTED_MODES:
        raise ConfigError(f"unknown requested mode {requested!r}; valid: {', '.join(REQUESTED_MODES)}")
    records = read_records(root)
    truths = [r.original_findings or r.findings for r in records]
    if requested == "shuffle":
        wanted = list(truths)
        random.Random(seed).shuffle(wanted)
    elif requested == "flip-hemisphere":
        wanted = [_flip_hemisphere(f) for f in truths]  # type: ignore[arg-type]
    elif requested == "flip-presence":
        wanted = [_flip_presence(f) for f in truths]  # type: ignore[arg-type]
    else:
        wanted = truths
    out = []
    for rec, want in zip(records, wanted, strict=True):
        data = rec.to_json_dict()
        data.update(requested_findings=want.to_dict() if want is not None else None,
                    prompt=render_text(want) if want is not None else None,
                    source=f"generated:phantom-standin({requested})", split=None)
        out.append(DatasetRecord.model_validate(data))
    write_records(root, out)


def make_standin(out: str | Path, *, n: int = 400, size: int = 128, seed: int = 1, requested: str = "truth",
                 workers: int = 1, progress: bool = False) -> Path:
    """Write a phantom with ``seed`` to ``out`` and turn it into a stand-in generated dataset."""
    if requested not in REQUESTED_MODES:
        raise ConfigError(f"unknown requested mode {requested!r}; valid: {', '.join(REQUESTED_MODES)}")
    out = Path(out)
    generate_phantom(PhantomConfig(out=out, n=n, size=size, seed=seed, workers=workers), progress=progress)
    set_requested(out, requested, seed=seed)
    return out
