"""What the app works with: settings resolved from a run directory or flags, and models loaded once, on first use."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from synthmed.errors import ConfigError

logger = logging.getLogger(__name__)

#: The judge used when neither --judge nor the run names one.
DEFAULT_JUDGE = "builtin:phantom-128-robust"


class GenerationSettings(BaseModel):
    """The model and the sampler settings the Generate tab starts from."""

    model_config = ConfigDict(extra="forbid")

    model: str
    loras: list[str] = Field(default_factory=list)
    lora_scale: float = 1.0
    embeddings: list[str] = Field(default_factory=list)
    prior: str | None = None
    scheduler: str = "euler-ancestral"
    steps: int = 50
    guidance_scale: float = 4.0
    acquisition_noise: str = "auto"


class AppConfig(BaseModel):
    """Settings of ``synthmed app``.

    Attributes:
        run: A run directory (``synthmed run`` / ``synthmed demo``): its generator (the settings of its last
            ``generate`` stage, or its ``train.ldm`` model), localiser and judge are the defaults.
        model: A text-to-image pipeline folder or hub id (overrides the run's).
        localizer: A localiser folder from ``synthmed localize train`` (overrides the run's).
        vlm: ``hf:<model>`` or ``api:<model>`` for explanations.
        vlm_base_url: The OpenAI-compatible server of an ``api:`` VLM (default: ``SYNTHMED_API_BASE``).
        judge: The findings judge that reads each generated image (default: the run's, else the built-in one).
        device: Torch device for the models.
    """

    model_config = ConfigDict(extra="forbid")

    run: Path | None = None
    model: str | None = None
    localizer: Path | None = None
    vlm: str | None = None
    vlm_base_url: str | None = None
    judge: str | None = None
    device: str = "auto"
    host: str = "127.0.0.1"
    port: int = Field(7860, ge=1, le=65535)


def _from_run(run: Path) -> dict[str, Any]:
    from synthmed.report.rundata import RunData

    data = RunData(run)
    found: dict[str, Any] = {}
    generate = data.done("generate")
    if generate:
        s = generate[-1].settings
        keys = set(GenerationSettings.model_fields)
        found["generation"] = {k: v for k, v in s.items() if k in keys and v is not None}
    ldm = data.done("train.ldm")
    if ldm and "generation" not in found:
        found["generation"] = {"model": str(ldm[-1].out)}
    localizer = data.done("localize.train")
    if localizer:
        found["localizer"] = localizer[-1].out
    judge = data.done("train.judge")
    if judge:
        found["judge"] = str(judge[-1].out)
    else:
        adherence = data.done("evaluate.adherence")
        if adherence and adherence[-1].settings.get("judge"):
            found["judge"] = adherence[-1].settings["judge"]
    return found


class AppModels:
    """The app's settings and its models, each loaded on first use and kept (thread-safe)."""

    def __init__(self, cfg: AppConfig):
        self.cfg = cfg
        found = _from_run(cfg.run) if cfg.run is not None else {}
        generation = dict(found.get("generation") or {})
        if cfg.model is not None:
            generation = {"model": cfg.model}
        self.generation = GenerationSettings.model_validate(generation) if generation.get("model") else None
        self.localizer_dir = cfg.localizer or found.get("localizer")
        self.judge_ref = cfg.judge or found.get("judge") or DEFAULT_JUDGE
        self.vlm = cfg.vlm
        self._lock = threading.Lock()
        self._cache: dict[str, Any] = {}

    def _once(self, key: str, load: Any) -> Any:
        with self._lock:
            if key not in self._cache:
                self._cache[key] = load()
            return self._cache[key]

    def device(self):
        from synthmed.utils.device import resolve_device

        return resolve_device(self.cfg.device)

    def pipeline(self, scheduler: str):
        """The text-to-image pipeline (loaded once), set to sample with ``scheduler``.

        Callers run one generation at a time (the app's queue), so switching the sampler is safe.
        """
        from synthmed.generate.pipeline import load_pipeline, set_scheduler

        g = self.require_generation()
        pipe = self._once("pipe", lambda: load_pipeline(
            g.model, scheduler=scheduler, loras=g.loras, lora_scale=g.lora_scale, embeddings=g.embeddings,
            device=self.device(), prior=g.prior))
        set_scheduler(pipe, scheduler)
        return pipe

    def mask_condition(self) -> str | None:
        """``mask`` or ``mask+head`` when the generator paints lesions into given masks (``train ldm --condition``)."""
        from synthmed.models.ldm import mask_condition_of

        return mask_condition_of(self.require_generation().model)

    def noise(self):
        from synthmed.generate.run import noise_model_for

        g = self.require_generation()
        return self._once("noise", lambda: noise_model_for(g.model, g.acquisition_noise))

    def judge(self):
        from synthmed.judge import FindingsJudge

        return self._once("judge", lambda: FindingsJudge.from_pretrained(self.judge_ref))

    def localizer(self):
        from synthmed.localize.localizer import load_localizer

        if self.localizer_dir is None:
            raise ConfigError("no localiser: start the app with --localizer DIR (a folder from `synthmed localize "
                              "train`) or --run on a run that trained one")
        return self._once("localizer", lambda: load_localizer(self.localizer_dir, device=self.device()))

    def chat(self):
        from synthmed.llm.chat import chat_model

        if self.vlm is None:
            raise ConfigError("no VLM: start the app with --vlm hf:<model id or folder> or --vlm api:<model> "
                              "(any OpenAI-compatible server; see docs/localization.md)")
        return self._once("chat", lambda: chat_model(self.vlm, vision=True, what="VLM back end",
                                                     base_url=self.cfg.vlm_base_url, device=self.cfg.device))

    def require_generation(self) -> GenerationSettings:
        if self.generation is None:
            raise ConfigError("no generator: start the app with --model DIR_OR_HUB_ID or --run on a run that "
                              "trained or used one")
        return self.generation
