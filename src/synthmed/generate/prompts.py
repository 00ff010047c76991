"""Where prompts come from: text, a file, a findings grid, or a dataset's findings.

Every prompt carries the findings it requests (rendered with
:func:`synthmed.findings.render_text`, or parsed from free text when possible), so the
evaluation can compare what was asked with what was generated.

Findings-grid spec (brain MRI)::

    presence x hemisphere x size x shape            every value of each attribute
    hemisphere=left,right; size=small,large         chosen values
    presence=present; intensity=ring-enhancing x lobe

Items are separated by ``;`` or `` x ``; an attribute alone takes all its values.
``presence`` (``tumor_present``) defaults to both; the tumour-free prompt then repeats once
per tumour combination when ``balance_presence`` is on, so half of the images have no
tumour.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthmed.errors import ConfigError, DataError
from synthmed.findings.parse import FindingsParseError, parse_text
from synthmed.findings.render import render_text
from synthmed.findings.schema import (
    BRAIN_ATTRIBUTE_VALUES,
    BrainMRIFindings,
)

DEFAULT_GRID = "presence x hemisphere x size x shape"
_BOOL_VALUES = {"true": True, "yes": True, "present": True, "1": True,
                "false": False, "no": False, "absent": False, "0": False}
#: Grid attributes and their values (booleans spelled true/false; a grid lists True first).
GRID_ATTRIBUTES: dict[str, tuple] = {name: (True, False) if values == (False, True) else values
                                     for name, values in BRAIN_ATTRIBUTE_VALUES.items()}
_ALIASES = {"presence": "tumor_present", "present": "tumor_present", "size": "size_category", "type": "tumor_type"}


@dataclass(frozen=True)
class PromptSpec:
    """One prompt and the findings it asks for (None when free text does not state them)."""

    text: str
    findings: object | None = None


def _requested(text: str) -> PromptSpec:
    try:
        return PromptSpec(text, parse_text(text))
    except FindingsParseError:
        return PromptSpec(text, None)


def parse_grid_spec(spec: str | None) -> dict[str, tuple]:
    """Attribute -> values of a findings-grid spec (see the module docstring).

    Raises:
        ConfigError: an unknown attribute or value, naming the valid ones.
    """
    spec = (spec or "").strip()
    if spec in ("", "default"):
        spec = DEFAULT_GRID
    out: dict[str, tuple] = {}
    for item in re.split(r"\s*;\s*|\s+x\s+", spec):
        item = item.strip()
        if not item:
            continue
        name, _, values = item.partition("=")
        name = _ALIASES.get(name.strip(), name.strip())
        if name not in GRID_ATTRIBUTES:
            raise ConfigError(f"findings grid {spec!r}: unknown attribute {name!r}; valid: "
                              f"{', '.join(list(GRID_ATTRIBUTES) + list(_ALIASES))}")
        allowed = GRID_ATTRIBUTES[name]
        if not values.strip():
            out[name] = allowed
            continue
        chosen = []
        for v in (x.strip() for x in values.split(",") if x.strip()):
            value = _BOOL_VALUES.get(v.lower()) if isinstance(allowed[0], bool) else v
            if value is None or value not in allowed:
                shown = "true, false" if isinstance(allowed[0], bool) else ", ".join(allowed)
                raise ConfigError(f"findings grid {spec!r}: {name} cannot be {v!r}; valid: {shown}")
            chosen.append(value)
        out[name] = tuple(dict.fromkeys(chosen))
    return out


def findings_grid(spec: str | None = None, *, balance_presence: bool = True) -> list[PromptSpec]:
    """Every combination of the spec's attribute values, rendered as prompts.

    Returns:
        The tumour combinations in spec order (product over attributes), then the
        tumour-free prompt (repeated to balance presence, when requested).
    """
    attrs = parse_grid_spec(spec)
    presence = attrs.pop("tumor_present", (True, False))
    out: list[PromptSpec] = []
    if True in presence:
        names = list(attrs)
        for values in itertools.product(*(attrs[n] for n in names)):
            f = BrainMRIFindings(tumor_present=True, **dict(zip(names, values, strict=True)))
            out.append(PromptSpec(render_text(f), f))
    if False in presence:
        f = BrainMRIFindings(tumor_present=False)
        repeats = max(1, len(out)) if balance_presence else 1
        out.extend([PromptSpec(render_text(f), f)] * repeats)
    return out


def balanced_like(dataset: str | Path, *, num_prompts: int | None = None, seed: int = 0) -> list[PromptSpec]:
    """Prompts that follow the findings distribution of a dataset.

    One prompt per row with findings (rendered with :func:`render_text`, without the
    measured diameter), or ``num_prompts`` rows drawn with a seeded generator.

    Raises:
        DataError: the dataset is missing or no row has findings.
    """
    from synthmed.data.dataset import read_records

    records = read_records(dataset, check_files=False)
    findings = [r.findings for r in records if r.findings is not None]
    if not findings:
        raise DataError("no row has findings to sample prompts from; caption the dataset first",
                        Path(dataset) / "metadata.jsonl")
    if num_prompts is not None:
        rng = np.random.default_rng(seed)
        picks = rng.choice(len(findings), size=num_prompts, replace=num_prompts > len(findings))
        findings = [findings[i] for i in picks]
    out = []
    for f in findings:
        if isinstance(f, BrainMRIFindings) and f.size_mm is not None:
            f = f.model_copy(update={"size_mm": None})  # the prompt asks for the category, not a diameter
        out.append(PromptSpec(render_text(f), f))
    return out


def read_prompts_file(path: str | Path) -> list[str]:
    """Prompts from a text file, one per line; blank lines and ``#`` comments are skipped.

    Raises:
        ConfigError: the file is missing or holds no prompt.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: prompts file not found")
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    prompts = [ln for ln in lines if ln and not ln.startswith("#")]
    if not prompts:
        raise ConfigError(f"{path}: no prompts in the file (one per line)")
    return prompts


def collect_prompts(*, prompts: list[str], prompts_file: str | Path | None, findings_grid_spec: str | None,
                    num_prompts: int | None = None, balance_presence: bool = True, seed: int = 0) -> list[PromptSpec]:
    """The prompt list of a generation run from whichever source is set."""
    if findings_grid_spec is not None:
        if findings_grid_spec.startswith("balanced:"):
            return balanced_like(findings_grid_spec.split(":", 1)[1], num_prompts=num_prompts, seed=seed)
        return findings_grid(findings_grid_spec, balance_presence=balance_presence)
    if prompts_file is not None:
        return [_requested(p) for p in read_prompts_file(prompts_file)]
    return [_requested(p) for p in prompts]
