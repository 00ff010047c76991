"""The typed pipeline config of ``synthmed run``: stages, their settings and how they connect.

A config names its stages in order; each stage has a ``kind`` (a registered stage, see
:mod:`synthmed.pipeline.registry`) and ``settings`` (the fields of that stage's own config,
minus its output path, which the runner chooses). A string setting may refer to another
stage's output directory as ``${name}`` (or a path inside it, ``${name}/images``), also
inside a longer string (``balanced:${real}``); those references are the pipeline's edges::

    name: demo
    seed: 0
    stages:
      - {name: real, kind: data.phantom, settings: {n: 96, size: 64}}
      - {name: captioned, kind: caption, settings: {data: "${real}", captioner: mask}}
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from synthmed.errors import ConfigError
from synthmed.utils.configs import load_config

#: ``${stage}`` or ``${stage}/sub/path`` inside a string setting.
REF = re.compile(r"\$\{([A-Za-z0-9_.-]+)\}")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class StageSpec(BaseModel):
    """One stage of a pipeline.

    Attributes:
        name: Unique name; also its output directory inside the run directory unless ``out`` is set.
        kind: Registered stage kind (``data.phantom``, ``caption``, ``train.ldm``, ``evaluate.fidelity``...).
        settings: Options of the stage's own config (its output path excepted).
        out: Output directory relative to the run directory (default: ``name``).
        enabled: False keeps the stage in the config but neither checks its availability nor runs it.
        reserve_minutes: Time this stage is expected to take; a stage with ``minutes: auto`` gets the
            pipeline's budget minus the time spent so far minus the reserves of the stages after it.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: str
    settings: dict[str, Any] = Field(default_factory=dict)
    out: str | None = None
    enabled: bool = True
    reserve_minutes: float = Field(0.0, ge=0)

    @field_validator("name")
    @classmethod
    def _check_name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("use letters, digits, '_', '-' or '.' (and start with a letter or digit)")
        return v

    @field_validator("out")
    @classmethod
    def _check_out(cls, v: str | None) -> str | None:
        if v is not None and (Path(v).is_absolute() or ".." in Path(v).parts or not v.strip()):
            raise ValueError("must be a relative path inside the run directory")
        return v

    @property
    def out_dir(self) -> str:
        return self.out or self.name

    def references(self) -> list[str]:
        """Names of the stages whose outputs this stage's settings refer to (in order, unique)."""
        found: list[str] = []
        for text in _strings(self.settings):
            for name in REF.findall(text):
                if name not in found:
                    found.append(name)
        return found


class PipelineConfig(BaseModel):
    """A whole study: where it runs, its seed, its time budget and its stages.

    Attributes:
        name: Study name (shown in the report).
        description: One paragraph for the report's summary.
        out: Default run directory (``synthmed run --out`` overrides it); relative paths are
            taken from the current directory.
        seed: Default seed: given to every stage whose config has a ``seed`` field not set in its settings.
        minutes: Wall-time budget shared by stages with ``minutes: auto``.
        min_auto_minutes: The least a ``minutes: auto`` stage gets, even when the budget is spent.
        threads: torch CPU threads of every stage run in this process (None: torch's default). The thread
            count changes the order of floating-point reductions, so it is part of what makes a model.
        stages: The stages, in the order they run; a stage may only refer to earlier ones.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = "study"
    description: str = ""
    out: str | None = None
    seed: int = 0
    minutes: float | None = Field(None, gt=0)
    min_auto_minutes: float = Field(2.0, gt=0)
    threads: int | None = Field(None, ge=1)
    stages: list[StageSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_graph(self) -> PipelineConfig:
        seen: set[str] = set()
        outs: dict[str, str] = {}
        for stage in self.stages:
            if stage.name in seen:
                raise ValueError(f"stage name '{stage.name}' is used twice")
            for ref in stage.references():
                if ref == stage.name:
                    raise ValueError(f"stage '{stage.name}' refers to its own output ${{{ref}}}")
                if ref not in seen:
                    known = ", ".join(sorted(seen)) or "none"
                    raise ValueError(f"stage '{stage.name}' refers to ${{{ref}}}, which is not an earlier stage "
                                     f"(earlier stages: {known})")
            key = Path(stage.out_dir).as_posix()
            for other_out, other in outs.items():
                if key == other_out or key.startswith(other_out + "/") or other_out.startswith(key + "/"):
                    raise ValueError(f"stages '{other}' and '{stage.name}' write into overlapping directories "
                                     f"'{other_out}' and '{key}'")
            outs[key] = stage.name
            seen.add(stage.name)
        return self

    def stage(self, name: str) -> StageSpec:
        for s in self.stages:
            if s.name == name:
                return s
        raise ConfigError(f"no stage named '{name}' (stages: {', '.join(s.name for s in self.stages)})")

    def downstream_of(self, name: str) -> list[str]:
        """Stages that depend on ``name``, directly or through other stages."""
        hit = {name}
        for s in self.stages:
            if any(r in hit for r in s.references()):
                hit.add(s.name)
        hit.discard(name)
        return [s.name for s in self.stages if s.name in hit]


def _strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def substitute(value: Any, outputs: dict[str, str]) -> Any:
    """``value`` with every ``${stage}`` replaced by ``outputs[stage]`` (recursively through dicts/lists)."""
    if isinstance(value, str):
        return REF.sub(lambda m: outputs[m.group(1)], value)
    if isinstance(value, dict):
        return {k: substitute(v, outputs) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [substitute(v, outputs) for v in value]
    return value


def load_pipeline_config(path: str | Path | None = None, data: dict[str, Any] | None = None,
                         overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """A :class:`PipelineConfig` from a YAML file or a mapping, updated with ``overrides``.

    Raises:
        ConfigError: naming the file and each invalid field.
    """
    return load_config(PipelineConfig, path, overrides, data=data, what="pipeline config")
