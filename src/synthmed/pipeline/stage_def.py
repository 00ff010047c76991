"""What a stage kind is: a typed config plus the library function it calls, both named by import path."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from synthmed.errors import ConfigError
from synthmed.utils.configs import format_validation_error


class StageNotAvailable(ConfigError):
    """A registered stage kind whose library code cannot be imported in this install."""


@dataclass
class StageContext:
    """What a running stage may know about the run beyond its own settings.

    Attributes:
        run_dir: The run directory.
        out: This stage's output directory (created, empty on a fresh run).
        resume: The previous attempt of this very stage (same inputs and settings) did not finish;
            stages that checkpoint resume from there.
        minutes_left: For ``minutes: auto``: the budget share this stage may use, or None.
        seed: The pipeline seed.
    """

    run_dir: Path
    out: Path
    resume: bool = False
    minutes_left: float | None = None
    seed: int = 0


@dataclass(frozen=True)
class StageDef:
    """A stage kind.

    Attributes:
        kind: Registered name (``train.ldm``).
        summary: One line for ``synthmed run --list-stages`` and errors.
        config: ``"module:Class"`` of the pydantic config the settings validate against.
        entry: ``"module:function"`` of the library function (or stage adapter) that runs it.
        out_field: The config field that receives the output path (None: the config has none).
        out_file: The output is this file inside the stage directory (None: the directory itself).
        inputs: Settings fields that name existing files or directories outside the run directory
            (hashed by content so that a changed input reruns the stage).
        resume_field: Config field set True when a crashed attempt is resumed.
        overwrite_field: Config field set True so that a changed stage starts its directory afresh.
        adapter: The entry is called as ``entry(config, ctx)`` and returns a JSON-able summary
            (False: ``entry(config)``, its return value is recorded only if it is a dict).
        produces_dataset: The output directory is a dataset (its content hash goes into provenance).
        auto_minutes: The config has a ``minutes`` field that may be ``auto`` (the run's budget).
        result: ``"module:Class"`` of the :class:`~synthmed.results.StageResult` the stage writes
            into its directory (None: it writes none the report summarises).
        precious: Files in the stage directory that cannot be made again (people's answers): while one
            exists, the runner never clears the directory, and a changed stage fails instead.
    """

    kind: str
    summary: str
    config: str
    entry: str
    out_field: str | None = "out"
    out_file: str | None = None
    inputs: tuple[str, ...] = ()
    resume_field: str | None = None
    overwrite_field: str | None = None
    adapter: bool = False
    produces_dataset: bool = False
    auto_minutes: bool = False
    result: str | None = None
    precious: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    # -- loading -------------------------------------------------------------------------------
    def _load(self, target: str) -> Any:
        module, _, attr = target.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as err:
            raise StageNotAvailable(f"stage kind '{self.kind}' is registered but not available in this install: "
                                    f"cannot import {target} ({err}). Disable the stage (enabled: false) or "
                                    "install the synthmed version that provides it") from err

    def config_class(self) -> type[BaseModel]:
        return self._load(self.config)

    def function(self) -> Callable[..., Any]:
        return self._load(self.entry)

    def read_result(self, out_dir: Path) -> Any:
        """The stage's typed result read from ``out_dir``, or None when it writes none or has not yet.

        Raises:
            DataError: the result file exists but cannot be read as this kind's result.
        """
        if self.result is None:
            return None
        from synthmed.results import read_result

        cls = self._load(self.result)
        path = out_dir / cls.FILE
        return read_result(path, cls) if path.is_file() else None

    def available(self) -> str | None:
        """None when the stage can run here, else the reason it cannot."""
        try:
            self.config_class()
            self.function()
        except StageNotAvailable as err:
            return str(err)
        return None

    # -- building ------------------------------------------------------------------------------
    def output_path(self, out_dir: Path) -> Path:
        return out_dir / self.out_file if self.out_file else out_dir

    def build(self, settings: dict[str, Any], out_dir: Path, *, stage: str, seed: int | None = None,
              resume: bool = False, fresh: bool = False) -> BaseModel:
        """The stage's config: ``settings`` plus the output path (and seed, resume, overwrite flags).

        Raises:
            ConfigError: naming the stage and each invalid setting.
        """
        cls = self.config_class()
        data = dict(settings)
        fields = cls.model_fields
        for reserved in (self.out_field, self.resume_field, self.overwrite_field):
            if reserved and reserved in data:
                raise ConfigError(f"stage '{stage}' ({self.kind}): setting '{reserved}' is chosen by the runner; "
                                  "remove it (set the stage's 'out' to move its directory)")
        if self.out_field:
            data[self.out_field] = str(self.output_path(out_dir))
        if seed is not None and "seed" in fields and "seed" not in data:
            data["seed"] = seed
        if self.resume_field:
            data[self.resume_field] = resume
        if self.overwrite_field:
            data[self.overwrite_field] = fresh and not resume
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise ConfigError(f"stage '{stage}' ({self.kind}): {format_validation_error(err)}") from err
