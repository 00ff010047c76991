"""``synthmed run``: run a pipeline config stage by stage, skipping what has not changed.

Each stage's identity (its *key*) is a hash of its kind, its settings (with the pipeline
seed filled in), the keys of the stages it reads from and the content hashes of the files it
reads from outside the run directory. A stage whose key matches a finished earlier attempt is
skipped; a stage whose key changed starts its directory afresh, and so every stage that reads
from it (their upstream tokens changed); a stage that crashed resumes from its checkpoints when
it has them. The run directory records::

    RUN/config.yaml              the pipeline config as given
    RUN/run.json                 resolved config, seeds, versions, git revision, data hashes, timings
    RUN/.synthmed/stages/*.json  one record per stage (key, status, timings, summary)
    RUN/.synthmed/hash-cache.json
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

import synthmed.utils.outdir as outdir
from synthmed.data.dataset import hash_dataset
from synthmed.errors import ConfigError, SynthmedError
from synthmed.pipeline.config import PipelineConfig, StageSpec, substitute
from synthmed.pipeline.hashing import CACHE_FILE, HashCache, hash_input, reference_target, stage_key
from synthmed.pipeline.registry import StageContext, StageDef, StageNotAvailable, get_stage
from synthmed.utils.outdir import writes_to
from synthmed.utils.provenance import provenance, write_json_atomic
from synthmed.utils.secrets import fingerprint_secrets, redact_secrets

logger = logging.getLogger(__name__)

STATE_DIR = ".synthmed"
RUN_FILE = "run.json"
CONFIG_FILE = "config.yaml"


@dataclass
class StageOutcome:
    """What happened to one stage in one invocation (status: ran, resumed, skipped, disabled, failed)."""

    name: str
    kind: str
    status: str
    seconds: float = 0.0
    key: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


@dataclass
class RunResult:
    run_dir: Path
    stages: list[StageOutcome]
    seconds: float

    def outcome(self, name: str) -> StageOutcome:
        return next(s for s in self.stages if s.name == name)

    @property
    def ran(self) -> list[str]:
        return [s.name for s in self.stages if s.status in ("ran", "resumed")]

    @property
    def skipped(self) -> list[str]:
        return [s.name for s in self.stages if s.status == "skipped"]


@dataclass
class CheckResult:
    """The outcome of ``synthmed run --check``: one line per stage, and notes (missing inputs...)."""

    lines: list[str]
    notes: list[str]


# -- helpers -----------------------------------------------------------------------------------------
def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _record_path(run_dir: Path, name: str) -> Path:
    return run_dir / STATE_DIR / "stages" / f"{name}.json"


def read_stage_record(run_dir: Path, name: str) -> dict[str, Any] | None:
    import json

    p = _record_path(run_dir, name)
    try:
        return json.loads(p.read_text()) if p.is_file() else None
    except (OSError, ValueError):
        return None


def _effective_settings(spec: StageSpec, sdef: StageDef, cfg: PipelineConfig) -> dict[str, Any]:
    settings = dict(spec.settings)
    try:
        has_seed = "seed" in sdef.config_class().model_fields
    except StageNotAvailable:
        has_seed = False
    if has_seed and "seed" not in settings:
        settings["seed"] = cfg.seed
    return settings


def _resolve_auto(settings: dict[str, Any], sdef: StageDef, spec: StageSpec, minutes: float | None) -> dict[str, Any]:
    if settings.get("minutes") != "auto":
        return settings
    if not sdef.auto_minutes:
        raise ConfigError(f"stage '{spec.name}' ({sdef.kind}): 'minutes: auto' is only supported by time-budgeted "
                          "stages (train.ldm)")
    if minutes is None:
        raise ConfigError(f"stage '{spec.name}': 'minutes: auto' needs the pipeline's 'minutes' budget")
    return {**settings, "minutes": minutes}


def _auto_minutes(cfg: PipelineConfig, index: int, elapsed_s: float) -> float | None:
    if cfg.minutes is None:
        return None
    later = sum(s.reserve_minutes for s in cfg.stages[index + 1:] if s.enabled)
    return max(cfg.minutes - elapsed_s / 60 - later, cfg.min_auto_minutes)


def _input_values(sdef: StageDef, settings: dict[str, Any]) -> list[tuple[str, Any]]:
    """(label, value) of every input setting that names something outside the run.

    A list setting (``loras: [a, b]``) gives one entry per element (``loras[0]``); values that
    refer to a stage (``${lora}``) are left out: the stage's token stands for them.
    """
    out: list[tuple[str, Any]] = []
    for name in sdef.inputs:
        value = settings.get(name)
        items = list(enumerate(value)) if isinstance(value, list | tuple) else [(None, value)]
        for i, v in items:
            if v is None or (isinstance(v, str) and "${" in v):
                continue
            out.append((name if i is None else f"{name}[{i}]", v))
    return out


def _input_hashes(spec: StageSpec, sdef: StageDef, settings: dict[str, Any], cache: HashCache) -> dict[str, Any]:
    """Content hashes of the stage's inputs that live outside the run (inputs naming a stage use its token)."""
    return {label: hash_input(value, Path.cwd(), cache) for label, value in _input_values(sdef, settings)}


def _wipe(out_dir: Path, run_dir: Path, precious: tuple[str, ...] = ()) -> None:
    if out_dir.resolve() == run_dir.resolve() or run_dir.resolve() not in out_dir.resolve().parents:
        raise ConfigError(f"refusing to clear {out_dir}: not inside the run directory {run_dir}")
    kept = [name for name in precious if (out_dir / name).exists()]
    if kept:
        raise ConfigError(f"refusing to clear {out_dir}: its inputs or settings changed, but it holds {kept[0]}, "
                          "which cannot be made again (people's answers); move the folder away, or give the stage "
                          "another 'out'")
    if out_dir.exists():
        shutil.rmtree(out_dir)


# -- check ------------------------------------------------------------------------------------------
def check_pipeline(cfg: PipelineConfig, run_dir: Path | None = None) -> CheckResult:
    """Validate every stage's settings against its config class, without running or downloading anything.

    Inputs that are not on this machine are reported as notes (a config is often checked
    before its data is copied); everything else wrong is collected and raised at once.

    Raises:
        ConfigError: listing every problem (unknown kind, unavailable stage, bad setting, ...).
    """
    run_dir = Path(run_dir or cfg.out or "runs/check").resolve()
    outputs = {s.name: str(run_dir / s.out_dir) for s in cfg.stages}
    problems: list[str] = []
    lines: list[str] = []
    notes: list[str] = []
    for spec in cfg.stages:
        try:
            sdef = get_stage(spec.kind)
        except ConfigError as err:
            problems.append(f"stage '{spec.name}': {err}")
            continue
        if not spec.enabled:
            lines.append(f"{spec.name:<20} {spec.kind:<24} disabled")
            continue
        reason = sdef.available()
        if reason:
            problems.append(f"stage '{spec.name}': {reason}")
            continue
        try:
            settings = _effective_settings(spec, sdef, cfg)
            settings = _resolve_auto(settings, sdef, spec, _auto_minutes(cfg, cfg.stages.index(spec), 0.0))
            sdef.build(substitute(settings, outputs), Path(outputs[spec.name]), stage=spec.name, fresh=True)
        except ConfigError as err:
            problems.append(str(err))
            continue
        for name, value in _input_values(sdef, settings):
            target = reference_target(value) if isinstance(value, str) else value
            if isinstance(target, str) and target and ("/" in target or target.startswith(".")):
                if not Path(target).exists() and not _looks_like_hub_id(target):
                    notes.append(f"stage '{spec.name}': {name}={value!r} does not exist here (needed at run time)")
        deps = ", ".join(spec.references()) or "-"
        lines.append(f"{spec.name:<20} {spec.kind:<24} ok (reads: {deps})")
    if problems:
        raise ConfigError("pipeline config has problems:\n  " + "\n  ".join(problems))
    return CheckResult(lines=lines, notes=notes)


def _looks_like_hub_id(value: str) -> bool:
    """``org/name`` with no other slashes and no leading dot: a model hub id, not a local path."""
    parts = value.split("/")
    return len(parts) == 2 and all(parts) and not value.startswith((".", "/", "~"))


# -- run --------------------------------------------------------------------------------------------
def _run_dir_of(cfg: PipelineConfig, run_dir: str | Path | None = None, **_: Any) -> str | Path | None:
    return run_dir if run_dir is not None else cfg.out


@writes_to(_run_dir_of)
def run_pipeline(cfg: PipelineConfig, run_dir: str | Path | None = None, *, force: list[str] | tuple = (),
                 config_file: str | Path | None = None) -> RunResult:
    """Run ``cfg`` into ``run_dir`` (default ``cfg.out``), skipping stages whose key is unchanged.

    Args:
        cfg: The pipeline.
        run_dir: The run directory (created).
        force: Stage names to rerun even if unchanged (their dependants rerun too).
        config_file: The YAML the config came from (recorded).

    Raises:
        ConfigError: the config does not check (see :func:`check_pipeline`).
        Exception: whatever a stage raised; its record says ``failed`` and the next run resumes it.
    """
    if run_dir is None and cfg.out is None:
        raise ConfigError("no run directory: pass --out or set 'out' in the config")
    run_dir = Path(run_dir if run_dir is not None else cfg.out).resolve()
    for name in force:
        cfg.stage(name)  # raises on an unknown name
    check_pipeline(cfg, run_dir)
    outdir.make_locked(run_dir)
    (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(redact_secrets(cfg.model_dump(mode="json")), sort_keys=False))
    cache = HashCache(run_dir / STATE_DIR / CACHE_FILE)
    outputs = {s.name: str(run_dir / s.out_dir) for s in cfg.stages}
    tokens: dict[str, str] = {}
    outcomes: list[StageOutcome] = []
    started = time.perf_counter()
    run_record: dict[str, Any] = {"name": cfg.name, "description": cfg.description, "run_dir": str(run_dir),
                                  "config_file": str(config_file) if config_file else None, "started": _now()}
    from synthmed.utils.device import torch_threads  # torch only once a run starts

    try:
        with torch_threads(cfg.threads):
            for index, spec in enumerate(cfg.stages):
                outcome = _run_stage(cfg, index, spec, run_dir, outputs, tokens, cache, force, started)
                outcomes.append(outcome)
                _write_run_record(run_record, cfg, run_dir, outputs, outcomes, started)
    finally:
        cache.save()
    total = round(time.perf_counter() - started, 1)
    run_record["finished"] = _now()
    _write_run_record(run_record, cfg, run_dir, outputs, outcomes, started)
    logger.info("run finished in %.1f s: %d ran, %d skipped", total,
                sum(o.status in ("ran", "resumed") for o in outcomes), sum(o.status == "skipped" for o in outcomes))
    return RunResult(run_dir=run_dir, stages=outcomes, seconds=total)


def _run_stage(cfg: PipelineConfig, index: int, spec: StageSpec, run_dir: Path, outputs: dict[str, str],
               tokens: dict[str, str], cache: HashCache, force: list[str] | tuple, started: float) -> StageOutcome:
    sdef = get_stage(spec.kind)
    if not spec.enabled:
        logger.info("[%d/%d] %s (%s): disabled", index + 1, len(cfg.stages), spec.name, spec.kind)
        return StageOutcome(spec.name, spec.kind, "disabled")
    missing = [r for r in spec.references() if r not in tokens]
    if missing:
        raise ConfigError(f"stage '{spec.name}' reads from disabled stage(s) {', '.join(missing)}")
    settings = _effective_settings(spec, sdef, cfg)
    upstream = {r: tokens[r] for r in spec.references()}
    hashed = fingerprint_secrets(dict(settings))  # a new key or salt reruns the stage; the key never shows
    if sdef.auto_minutes and settings.get("minutes") == "auto":
        hashed["minutes"] = f"auto of {cfg.minutes}"
    inputs = _input_hashes(spec, sdef, settings, cache)
    key = stage_key(spec.kind, hashed, upstream, inputs, spec.out_dir)
    record = read_stage_record(run_dir, spec.name)
    out_dir = Path(outputs[spec.name])
    out_path = sdef.output_path(out_dir)
    label = f"[{index + 1}/{len(cfg.stages)}] {spec.name} ({spec.kind})"
    if (record and record.get("key") == key and record.get("status") == "complete" and out_path.exists()
            and spec.name not in force):
        tokens[spec.name] = record["token"]
        logger.info("%s: unchanged, skipped", label)
        return StageOutcome(spec.name, spec.kind, "skipped", record.get("seconds", 0.0), key,
                            record.get("summary") or {}, "inputs and settings unchanged")
    resume = bool(record and record.get("key") == key and record.get("status") in ("running", "failed")
                  and sdef.resume_field and spec.name not in force)
    if not resume:
        _wipe(out_dir, run_dir, sdef.precious)
    out_dir.mkdir(parents=True, exist_ok=True)
    minutes_left = _auto_minutes(cfg, index, time.perf_counter() - started)
    resolved = substitute(_resolve_auto(settings, sdef, spec, minutes_left), outputs)
    config = sdef.build(resolved, out_dir, stage=spec.name, resume=resume, fresh=True)
    attempts = (record.get("attempts", 0) if record and record.get("key") == key else 0) + 1
    rec: dict[str, Any] = {"name": spec.name, "kind": spec.kind, "key": key, "status": "running", "started": _now(),
                           "attempts": attempts, "resumed": resume, "upstream": upstream, "input_hashes": inputs,
                           "settings": config.model_dump(mode="json")}
    write_json_atomic(_record_path(run_dir, spec.name), rec)
    logger.info("%s: %s", label, "resuming" if resume else "running")
    t0 = time.perf_counter()
    ctx = StageContext(run_dir=run_dir, out=out_dir, resume=resume, minutes_left=minutes_left, seed=cfg.seed)
    try:
        value = sdef.function()(config, ctx) if sdef.adapter else sdef.function()(config)
    except BaseException as err:
        rec.update(status="failed", error=f"{type(err).__name__}: {err}", seconds=round(time.perf_counter() - t0, 1))
        write_json_atomic(_record_path(run_dir, spec.name), rec)
        if isinstance(err, SynthmedError):
            raise type(err)(f"stage '{spec.name}' ({spec.kind}) failed: {err}") from err
        raise
    seconds = round(time.perf_counter() - t0, 1)
    summary = _json_summary(value)
    rec.update(status="complete", finished=_now(), seconds=seconds, summary=summary,
               token=stage_key(spec.kind, {"key": key, "finished": _now(), "t": time.time()}, {}, {}, ""))
    if sdef.produces_dataset and (out_dir / "metadata.jsonl").is_file():
        rec["data_hash"] = hash_dataset(out_dir)
    write_json_atomic(_record_path(run_dir, spec.name), rec)
    tokens[spec.name] = rec["token"]
    logger.info("%s: done in %.1f s", label, seconds)
    return StageOutcome(spec.name, spec.kind, "resumed" if resume else "ran", seconds, key, summary)


def _json_summary(value: Any) -> dict[str, Any]:
    import json

    if not isinstance(value, dict):
        return {}
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return {}


def _write_run_record(record: dict[str, Any], cfg: PipelineConfig, run_dir: Path, outputs: dict[str, str],
                      outcomes: list[StageOutcome], started: float) -> None:
    stages: dict[str, Any] = {}
    seeds: dict[str, Any] = {"pipeline": cfg.seed}
    data_hashes: dict[str, Any] = {}
    for o in outcomes:
        rec = read_stage_record(run_dir, o.name) or {}
        stages[o.name] = {"kind": o.kind, "status": o.status, "seconds": o.seconds, "key": o.key,
                          "out": outputs[o.name], "summary": o.summary, "attempts": rec.get("attempts"),
                          "settings": rec.get("settings")}
        if isinstance(rec.get("settings"), dict) and "seed" in rec["settings"]:
            seeds[o.name] = rec["settings"]["seed"]
        if rec.get("data_hash"):
            data_hashes[o.name] = rec["data_hash"]
        for field_name, digest in (rec.get("input_hashes") or {}).items():
            if digest:
                data_hashes[f"{o.name}.{field_name}"] = digest
    record.update({
        "config": cfg.model_dump(mode="json"),
        "stages": stages,
        "seeds": seeds,
        "data_hashes": data_hashes,
        "timings_s": {**{o.name: o.seconds for o in outcomes},
                      "this_invocation": round(time.perf_counter() - started, 1)},
        "provenance": provenance(),
    })
    write_json_atomic(run_dir / RUN_FILE, record)
