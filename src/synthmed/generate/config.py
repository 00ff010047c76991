"""The typed configuration of ``synthmed generate``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from synthmed.data.dataset import is_dataset


class GenerateConfig(BaseModel):
    """What to generate, from which model, and how.

    Exactly one prompt source is set: ``prompts``, ``prompts_file`` or ``findings_grid``
    (a spec such as ``"presence x hemisphere x size x shape"``, ``"default"``, or
    ``"balanced:DATASET_DIR"``; see :mod:`synthmed.generate.prompts`).

    Attributes:
        model: A diffusers text-to-image pipeline folder or hub id (Kandinsky 2.2: the decoder).
        prior: The Kandinsky 2.2 prior that goes with a decoder ``model``.
        out: The dataset directory to write (or resume).
        seed: Base seed; image ``i`` uses the seed derived from (seed, i), stored in its row.
        batch_size: Images per pipeline call; changes speed, not which seed an image gets.
        loras: LoRA folders/files loaded with ``pipe.load_lora_weights``.
        embeddings: Textual-inversion files loaded with ``pipe.load_textual_inversion``.
        num_shards, shard: Make only shard ``shard`` (0-based) of ``num_shards`` into ``out/shards/``
            (:mod:`synthmed.generate.shards`); under ``accelerate launch`` each process takes its own shard
            and the main process merges.
    """

    model_config = ConfigDict(extra="forbid")

    model: str
    prior: str | None = None
    out: Path
    prompts: list[str] = Field(default_factory=list)
    prompts_file: Path | None = None
    findings_grid: str | None = None
    num_prompts: int | None = Field(None, ge=1, description="with balanced:DIR, how many prompts to draw")
    balance_presence: bool = True
    n_per_prompt: int = Field(1, ge=1)
    steps: int = Field(25, ge=1)
    guidance_scale: float = Field(3.0, ge=0)
    scheduler: str = "dpm-solver++"
    seed: int = 0
    batch_size: int = Field(8, ge=1)
    negative_prompt: str | None = None
    loras: list[str] = Field(default_factory=list)
    lora_scale: float = 1.0
    embeddings: list[str] = Field(default_factory=list)
    height: int | None = Field(None, ge=8)
    width: int | None = Field(None, ge=8)
    bits: Literal[8, 16] = 8
    acquisition_noise: Literal["auto", "off"] = Field(
        "auto", description="auto: when the model folder has a scanner-noise model (noise_model.json, written by "
        "synthmed train ldm), draw fresh noise of that law onto each grayscale image, seeded by the image's seed; "
        "off: the pipeline's images as they are")
    controlnet: str | None = Field(None, description="a lesion-mask ControlNet (synthmed train controlnet) for model")
    masks: Path | None = Field(None, description="one image per mask: a dataset directory (its rows' masks and "
                               "captions) or a folder of mask PNGs (with one prompt, or one prompt per mask)")
    masks_from_findings: bool = Field(False, description="draw each image's lesion mask from its prompt's findings "
                                      "(phantom tumour model, seeded by the image's seed)")
    controlnet_scale: float = Field(1.0, ge=0, description="weight of the ControlNet's residuals")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:1, mps")
    progress: bool = True
    num_shards: int = Field(1, ge=1)
    shard: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _one_source(self) -> GenerateConfig:
        sources = [n for n, v in (("prompts", self.prompts), ("prompts_file", self.prompts_file),
                                  ("findings_grid", self.findings_grid)) if v]
        masks_dataset = self.masks is not None and is_dataset(self.masks)
        if masks_dataset and sources:
            raise ValueError(f"masks {self.masks} is a dataset: its rows' captions are the prompts; drop "
                             f"{', '.join(sources)}")
        if not masks_dataset and len(sources) != 1:
            raise ValueError("give exactly one prompt source (prompt, prompts file or findings grid), got "
                             + (", ".join(sources) if sources else "none"))
        if self.masks is not None and self.masks_from_findings:
            raise ValueError("give masks or masks_from_findings, not both")
        from synthmed.models.ldm import is_mask_conditioned_model

        conditioned = self.mask_conditioned
        mask_model = is_mask_conditioned_model(self.model)
        if conditioned and self.controlnet is None and not mask_model:
            raise ValueError("masks need a model that reads them: a controlnet (synthmed train controlnet) or a "
                             "mask-conditioned model (synthmed train ldm --condition mask or mask+head)")
        if self.controlnet is not None and mask_model:
            raise ValueError(f"model {self.model} is mask-conditioned itself; drop controlnet")
        if (self.controlnet is not None or mask_model) and not conditioned:
            needs = "a controlnet" if self.controlnet is not None else f"the mask-conditioned model {self.model}"
            raise ValueError(f"{needs} needs masks: give masks (a folder or dataset) or masks_from_findings")
        if self.shard is not None and self.shard >= self.num_shards:
            raise ValueError(f"shard {self.shard} does not exist with num_shards {self.num_shards} (0-based)")
        if self.num_shards > 1 and self.shard is None:
            raise ValueError("num_shards > 1 needs shard (which one this process makes); under accelerate launch "
                             "leave both unset")
        return self

    @property
    def mask_conditioned(self) -> bool:
        """Whether each image is drawn around a lesion mask (given or drawn from findings)."""
        return self.masks is not None or self.masks_from_findings

    def run_identity(self) -> dict:
        """The settings that decide which images a run produces (checked when resuming)."""
        return self.model_dump(mode="json", exclude={"out", "batch_size", "progress", "device", "num_shards",
                                                     "shard"})
