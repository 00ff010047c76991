"""Reading a run directory for the report: its stages, their outputs and the datasets they name."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthmed.errors import ConfigError, DataError
from synthmed.pipeline.config import REF


@dataclass
class StageInfo:
    """One stage as the report sees it: raw settings (with ``${refs}``), resolved settings and its directory."""

    name: str
    kind: str
    out: Path
    status: str = ""
    seconds: float = 0.0
    raw: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    def ref(self, key: str) -> str | None:
        """The stage name a raw setting refers to (``data: ${real}`` -> ``real``), or None."""
        value = self.raw.get(key)
        m = REF.search(value) if isinstance(value, str) else None
        return m.group(1) if m else None

    def json(self, name: str) -> dict[str, Any] | None:
        return read_json(self.out / name)

    def result(self) -> Any:
        """The stage's typed result (:mod:`synthmed.results`), or None when its kind writes none.

        Raises:
            DataError: naming the result file that cannot be read as this kind's result.
        """
        from synthmed.pipeline.registry import get_stage

        try:
            sdef = get_stage(self.kind)
        except ConfigError:  # a kind registered by a plug-in that is not installed here
            return None
        return sdef.read_result(self.out)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None


class RunData:
    """A run directory written by ``synthmed run`` (or ``synthmed demo``).

    Raises:
        DataError: the directory has no readable ``run.json``.
    """

    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)
        self.record = read_json(self.dir / "run.json")
        if not isinstance(self.record, dict) or "config" not in self.record:
            raise DataError("not a run directory: no readable run.json (write one with `synthmed run CONFIG` or "
                            "`synthmed demo`)", self.dir / "run.json")
        cfg = self.record["config"]
        recorded = self.record.get("stages", {})
        self.stages: list[StageInfo] = []
        for spec in cfg.get("stages", []):
            rec = recorded.get(spec["name"], {})
            self.stages.append(StageInfo(
                name=spec["name"], kind=spec["kind"], out=self.dir / (spec.get("out") or spec["name"]),
                status=rec.get("status", "not run"), seconds=rec.get("seconds") or 0.0,
                raw=spec.get("settings", {}), settings=rec.get("settings") or {}, summary=rec.get("summary") or {}))

    @property
    def name(self) -> str:
        return self.record.get("name") or self.dir.name

    def done(self, kind_prefix: str) -> list[StageInfo]:
        """Finished stages whose kind starts with ``kind_prefix``."""
        return [s for s in self.stages if s.kind.startswith(kind_prefix) and s.status in ("ran", "resumed", "skipped")]

    def stage(self, name: str | None) -> StageInfo | None:
        return next((s for s in self.stages if s.name == name), None) if name else None


def read_rows(dataset: Path) -> list[dict[str, Any]]:
    """The metadata rows of a dataset directory (empty if it has none)."""
    meta = dataset / "metadata.jsonl"
    if not meta.is_file():
        return []
    rows = []
    for line in meta.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows


def _brain(f: dict[str, Any]) -> bool:
    return f.get("modality") == "brain_mri"


def location_group(findings: dict[str, Any] | None, label: str | None = None) -> str | None:
    """Row key of a real-vs-generated grid by location ("left frontal", "no tumour"; a label otherwise)."""
    if not findings:
        return label
    if _brain(findings):
        if not findings.get("tumor_present"):
            return "no tumour"
        return " ".join(str(x) for x in (findings.get("hemisphere"), findings.get("lobe")) if x) or "tumour"
    if findings.get("modality") == "gi_endoscopy":
        n = findings.get("polyp_count")
        return "no polyp" if n == 0 else f"{n} polyp{'s' if n and n > 1 else ''}" if n is not None else label
    return findings.get("label") or label


def size_group(findings: dict[str, Any] | None, label: str | None = None) -> str | None:
    """Row key by lesion size category ("small", "large", "no tumour")."""
    if not findings or not _brain(findings):
        return None
    if not findings.get("tumor_present"):
        return "no tumour"
    return findings.get("size_category") or None
