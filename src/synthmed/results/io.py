"""Writing and reading stage results; run directories written before schema 2 are upgraded here, once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from synthmed.errors import DataError
from synthmed.results.stages import StageResult

R = TypeVar("R", bound=StageResult)


def write_result(path: str | Path, result: StageResult) -> None:
    """Write ``result`` atomically as JSON (readers never see half a file)."""
    from synthmed.utils.provenance import write_json_atomic

    write_json_atomic(path, result.model_dump(mode="json"))


def read_result(path: str | Path, cls: type[R]) -> R:
    """The ``cls`` result stored at ``path`` (results from before schema 2 are upgraded).

    Raises:
        DataError: naming the file: unreadable, not JSON, written by a newer synthmed, or not a
            result of this kind.
    """
    from synthmed.utils.configs import format_validation_error

    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise DataError(f"cannot read this {cls.model_fields['kind'].default} result: {err}", path) from err
    if not isinstance(data, dict):
        raise DataError("a stage result must be a JSON object", path)
    version = data.get("schema_version", 1)
    if version == 1:
        kind = cls.model_fields["kind"].default
        if kind not in _UPGRADES:  # a kind that never had a schema-1 shape
            raise DataError(f"no schema_version: not a {kind} result written by synthmed", path)
        data = upgrade_v1(kind, data)
    elif not isinstance(version, int) or version > 2:
        raise DataError(f"written by a newer synthmed (schema_version {version!r}; this one reads 1 and 2): "
                        "upgrade synthmed to read it", path)
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        raise DataError(f"not a valid {cls.model_fields['kind'].default} result: "
                        f"{format_validation_error(err, subject='result')}", path) from err


# -- schema 1 (no schema_version): each producer's own shape ----------------------------------------
def _metric(d: Any, **detail: Any) -> dict[str, Any]:
    """``{"value"|"mean"|"accuracy", "ci95"|"ci", "n", "note", ...}`` (or a bare number) as a Metric."""
    if not isinstance(d, dict):
        return {"value": d, "detail": detail}
    rest = dict(d)
    value = next((rest.pop(k) for k in ("value", "mean", "accuracy") if k in rest), None)
    ci = rest.pop("ci95", None) or rest.pop("ci", None)
    return {"value": value, "ci95": ci, "n": rest.pop("n", None), "note": rest.pop("note", None),
            "detail": {**rest, **detail}}


def _agreement(d: dict[str, Any]) -> dict[str, Any]:
    keep = {k: d[k] for k in ("correct", "missing", "confusion", "confusion_matrix") if k in d}
    rest = {k: v for k, v in d.items() if k not in keep and k != "attribute"}
    return {**_metric(rest), **keep}


def _agreements(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: _agreement(v) for k, v in (attrs or {}).items()}


def _fidelity(d: dict[str, Any]) -> dict[str, Any]:
    d.pop("schema", None)
    d["metrics"] = {k: _metric(v) for k, v in (d.get("metrics") or {}).items()}
    floor = d.get("real_vs_real")
    if isinstance(floor, dict):
        ks = {"precision": "pr_k", "recall": "pr_k", "f1": "pr_k", "density": "dc_k", "coverage": "dc_k"}
        metrics = {k: _metric(floor[k], **({"k": floor[ks[k]]} if ks.get(k) in floor else {}))
                   for k in ("fid", "kid", *ks) if k in floor}
        d["real_vs_real"] = {"n": floor["n"], "seed": floor["seed"], "note": floor.get("note"), "metrics": metrics}
    return d


def _adherence(d: dict[str, Any]) -> dict[str, Any]:
    d.pop("accuracy", None)
    d["attributes"] = _agreements(d.get("attributes"))
    return d


def _captions(d: dict[str, Any]) -> dict[str, Any]:
    for c in (d.get("captioners") or {}).values():
        c["attributes"] = _agreements(c.get("attributes"))
    return d


def _downstream(d: dict[str, Any]) -> dict[str, Any]:
    for c in (d.get("conditions") or {}).values():
        c["metrics"] = {k: _metric(v) for k, v in (c.get("metrics") or {}).items()}
    for c in (d.get("comparisons") or {}).values():
        c["metrics"] = {k: _metric(v) for k, v in (c.get("metrics") or {}).items()}
    return d


def _privacy(d: dict[str, Any]) -> dict[str, Any]:
    d.pop("schema", None)
    d["memorisation"] = {"value": d.pop("memorisation_fraction", None), "n": d.get("n_synthetic"),
                         "detail": {"likely_copies": d.pop("likely_copies", 0)}}
    return d


def _localization(d: dict[str, Any]) -> dict[str, Any]:
    settings = ("threshold", "n_images", "n_pixel_images", "image_score", "test_time_flip", "test_time_shift",
                "split", "images_per_second")
    out = {k: d[k] for k in settings if k in d}
    out["metrics"] = {k: _metric(v) for k, v in d.items() if k not in settings and k != "kind"}
    return out


def _explain(d: dict[str, Any]) -> dict[str, Any]:
    for s in (d.get("scores") or {}).values():
        s.pop("accuracy", None)
        s["attributes"] = _agreements(s.get("attributes"))
    return d


_UPGRADES = {"evaluate.fidelity": _fidelity, "evaluate.adherence": _adherence, "evaluate.captions": _captions,
             "evaluate.downstream": _downstream, "evaluate.privacy": _privacy, "localize.predict": _localization,
             "explain": _explain}


def upgrade_v1(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 result of ``kind`` in the schema-2 shape."""
    data = _UPGRADES[kind](json.loads(json.dumps(data)))
    data.pop("kind", None)
    return {**data, "kind": kind, "schema_version": 2}
