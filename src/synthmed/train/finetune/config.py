"""Typed configurations of ``synthmed train lora`` and ``train textual-inversion`` (YAML, flags or Python).

The presets of seed 000 (SD 1.5 / SDXL LoRA with a trainable text encoder) are spelled
out in ``configs/lora-sd15-seed000.yaml`` and ``configs/lora-sdxl-seed000.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from synthmed.train.ldm.config import StageConfig

Family = Literal["auto", "sd15", "sdxl"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FinetuneOptimConfig(StageConfig):
    """Optimisation of a fine-tuning run (AdamW, linear warmup, cosine decay to ``min_lr_ratio``).

    One optimizer step takes ``grad_accum`` micro-batches of ``batch_size`` images per process.
    """

    max_steps: int | None = Field(1000, ge=1)
    batch_size: int = Field(2, ge=1)
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(1e-4, gt=0)
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.01, ge=0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    min_snr_gamma: float | None = Field(5.0, gt=0, description="Min-SNR-gamma loss weighting; None: plain MSE")
    noise_offset: float = Field(0.0, ge=0, description="add this times a per-image, per-channel constant to the "
                                "training noise (offset noise: lets the model change an image's mean brightness)")
    use_8bit_adam: bool = Field(False, description="bitsandbytes AdamW8bit (needs bitsandbytes and a GPU)")
    gradient_checkpointing: bool = False


class LoraSpec(_Strict):
    """Where the low-rank adapters go and how they are scaled (Hu et al. 2021).

    ``alpha`` None means ``alpha = rank`` (scale 1). ``use_rslora`` scales by
    ``alpha / sqrt(rank)`` (Kalajdzievski 2023); ``use_dora`` decomposes weights into
    magnitude and direction (Liu et al. 2024); both as in seed 001 section 5.1.
    """

    rank: int = Field(4, ge=1)
    alpha: float | None = Field(None, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["to_k", "to_q", "to_v", "to_out.0"])
    text_encoder_target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj",
                                                                            "out_proj"])
    use_dora: bool = False
    use_rslora: bool = False

    def peft_config(self, text_encoder: bool = False):
        """The ``peft.LoraConfig`` of the UNet (or of a text encoder)."""
        from peft import LoraConfig

        return LoraConfig(r=self.rank, lora_alpha=self.alpha if self.alpha is not None else self.rank,
                          lora_dropout=self.dropout, init_lora_weights="gaussian", use_dora=self.use_dora,
                          use_rslora=self.use_rslora,
                          target_modules=self.text_encoder_target_modules if text_encoder else self.target_modules)


class FinetuneConfig(_Strict):
    """What every fine-tuning run of a pretrained pipeline needs.

    Attributes:
        base: Hub id or local folder of the pretrained diffusers pipeline.
        data: A synthmed dataset directory whose rows have ``text`` (and maybe ``paraphrases``).
        out: The output directory (adapters, checkpoints, validation grids, provenance).
        family: ``auto`` reads ``model_index.json`` of ``base``; or ``sd15`` / ``sdxl``.
        random_flip: Also train on horizontally flipped images; the flipped latents are
            cached too (two encodings per image, once per run).
    """

    base: str
    data: Path
    out: Path
    family: Family = "auto"
    seed: int = 0
    resolution: int = Field(512, ge=8)
    split: str | None = Field("train", description="train on this split when rows have one; None: all rows")
    use_paraphrases: bool = True
    caption_dropout: float = Field(0.0, ge=0, le=1, description="probability of the empty prompt")
    random_flip: bool = False
    optim: FinetuneOptimConfig = FinetuneOptimConfig()
    max_steps: int | None = Field(None, ge=1, description="shorthand for optim.max_steps")
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = "auto"
    checkpoint_every: int = Field(250, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    log_every: int = Field(10, ge=1)
    validation_prompts: list[str] = Field(default_factory=list, description="empty: 4 training captions")
    validation_every: int | None = Field(None, ge=1, description="steps between validation grids (one at the end)")
    validation_steps: int = Field(25, ge=1)
    validation_guidance_scale: float = Field(5.0, ge=0)
    val_split: str | None = Field(None, description="rows of this split (e.g. val) give a validation loss: fixed "
                                  "timesteps and noise, logged every val_loss_every steps; None: none")
    val_loss_every: int = Field(50, ge=1, description="steps between validation losses (and one at the end)")
    keep: Literal["last", "best"] = Field("last", description="export the last weights, or those of the step with "
                                          "the lowest validation loss (needs val_split)")
    threads: int | None = Field(None, ge=1)
    resume: bool = False
    overwrite: bool = False
    progress: bool = True
    tensorboard: bool = True

    @model_validator(mode="after")
    def _check(self) -> FinetuneConfig:
        if self.resume and self.overwrite:
            raise ValueError("resume and overwrite exclude each other")
        if self.max_steps is not None:
            self.optim = self.optim.model_copy(update={"max_steps": self.max_steps})
        if self.optim.max_steps is None:
            raise ValueError("optim.max_steps (or max_steps) must be set")
        if self.keep == "best" and self.val_split is None:
            raise ValueError("keep: best picks the step with the lowest validation loss; set val_split (e.g. val)")
        if self.val_split is not None and self.val_split == self.split:
            raise ValueError(f"val_split {self.val_split!r} is the training split; hold out another")
        return self


class LoraTrainConfig(FinetuneConfig):
    """``synthmed train lora``: LoRA on the UNet attention, optionally on the text encoder(s).

    Attributes:
        train_text_encoder: Add LoRA to the text encoder(s) too (seed 000's best setting).
    """

    lora: LoraSpec = LoraSpec()
    train_text_encoder: bool = False


class ConceptSpec(_Strict):
    """One textual-inversion concept: a new token with ``num_vectors`` embedding vectors.

    Attributes:
        token: The placeholder, e.g. ``<glioma>``; must not be a word the tokenizer knows.
        init_word: Its vectors start as this word's embedding (mean over its tokens).
        num_vectors: Vectors of the embedding (seed 002: many are needed in medicine).
        label: Train this concept on the rows with this ``label`` only; None: every row.
    """

    token: str
    init_word: str
    num_vectors: int = Field(1, ge=1, le=512)
    label: str | None = None


class TextualInversionConfig(FinetuneConfig):
    """``synthmed train textual-inversion``: new token embeddings, everything else frozen.

    Attributes:
        concepts: One or more concepts trained together (each on its rows).
        prompt_template: The training prompt; ``{token}`` is the concept's placeholder and
            ``{text}`` the row's caption (or a paraphrase).
        a1111: Also write each embedding in the AUTOMATIC1111 layout (``.pt`` and ``.safetensors``).
    """

    concepts: list[ConceptSpec] = Field(min_length=1)
    prompt_template: str = "a medical image of {token}"
    a1111: bool = False
    optim: FinetuneOptimConfig = FinetuneOptimConfig(lr=5e-3, weight_decay=0.0, min_snr_gamma=None)

    @model_validator(mode="after")
    def _check_concepts(self) -> TextualInversionConfig:
        tokens = [c.token for c in self.concepts]
        if len(set(tokens)) != len(tokens):
            raise ValueError(f"concept tokens must differ, got {tokens}")
        if "{token}" not in self.prompt_template:
            raise ValueError(f"prompt_template {self.prompt_template!r} must contain '{{token}}'")
        return self
