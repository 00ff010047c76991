"""A small CLIP trained from scratch on a dataset's image-caption pairs (the offline backbone).

Seed 003 uses a pretrained CLIP ViT-L/14. Without a model hub, :func:`pretrain_backbone`
trains a small ``transformers.CLIPModel`` (ViT image tower + transformer text tower, both
from config) contrastively on the training split's (image, caption) pairs and saves it as
an ordinary CLIP folder: ``CLIPModel.from_pretrained(dir)``, ``AutoTokenizer`` and
``CLIPImageProcessor`` load it with no synthmed code, so the localiser uses the very same
loading path as with hub weights.

Two details make contrastive learning work on a dataset whose captions repeat (every
healthy slice has the same caption):

* targets are multi-positive: every pair of rows with the same caption counts as a match
  (the CLIP loss with soft targets, rows normalised);
* a fraction ``prompt_mix`` of captions is swapped for a random prompt of the
  normal/abnormal ensemble of :mod:`synthmed.localize.prompts`, so the zero-shot prompts
  are in the text tower's language.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

import synthmed.utils.outdir as outdir
from synthmed.data.dataset import hash_dataset
from synthmed.errors import ConfigError, DataError
from synthmed.localize.backbone import CLIP_MEAN, CLIP_STD, ClipBackbone, default_stage_layers
from synthmed.localize.data import load_items
from synthmed.localize.prompts import prompt_ensemble
from synthmed.localize.tokenizer import train_clip_tokenizer
from synthmed.share.card import card_after_training
from synthmed.utils.device import resolve_device
from synthmed.utils.optim import fused_option
from synthmed.utils.outdir import first_argument, writes_to
from synthmed.utils.provenance import provenance, write_json_atomic
from synthmed.utils.seeding import derive_seed
from synthmed.utils.tmpfiles import apply_umask
from synthmed.utils.training_state import (
    has_training_state,
    load_training_state,
    save_training_state,
    warn_if_pickled,
)

logger = logging.getLogger(__name__)

CHECKPOINT = "pretrain_checkpoint"  # a training-state directory (utils/training_state.py)
LEGACY_CHECKPOINT = "pretrain_checkpoint.pt"  # pickled by earlier synthmed: never loaded


class BackbonePretrainConfig(BaseModel):
    """Settings of the from-scratch CLIP backbone."""

    model_config = ConfigDict(extra="forbid")

    data: Path
    out: Path
    split: Literal["train", "val", "test"] | None = "train"
    image_size: int = Field(96, ge=16)
    patch_size: int = Field(8, ge=2)
    hidden_size: int = Field(64, ge=8)
    num_layers: int = Field(4, ge=1)
    num_heads: int = Field(4, ge=1)
    text_hidden_size: int = Field(64, ge=8)
    text_layers: int = Field(2, ge=1)
    projection_dim: int = Field(64, ge=4)
    max_text_length: int = Field(32, ge=8)
    vocab_size: int = Field(600, ge=300)
    epochs: int = Field(6, ge=1)
    batch_size: int = Field(32, ge=2)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    prompt_mix: float = Field(0.3, ge=0, le=1)
    seed: int = 0
    threads: int | None = Field(None, ge=1)
    device: str = Field("auto", description="torch device: auto (the GPU when present), cpu, cuda...")
    resume: bool = False
    progress: bool = True

    def check(self) -> None:
        if self.image_size % self.patch_size:
            raise ConfigError(f"image_size {self.image_size} must be a multiple of patch_size {self.patch_size}")
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"hidden_size {self.hidden_size} must be divisible by num_heads {self.num_heads}")


def build_clip(cfg: BackbonePretrainConfig, vocab_size: int) -> torch.nn.Module:
    """A randomly initialised ``CLIPModel`` of ``cfg``'s size (BOS id 0, EOS/pad id 1)."""
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig

    vision = CLIPVisionConfig(hidden_size=cfg.hidden_size, intermediate_size=2 * cfg.hidden_size,
                              num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
                              image_size=cfg.image_size, patch_size=cfg.patch_size, num_channels=3,
                              projection_dim=cfg.projection_dim)
    text = CLIPTextConfig(vocab_size=vocab_size, hidden_size=cfg.text_hidden_size,
                          intermediate_size=2 * cfg.text_hidden_size, num_hidden_layers=cfg.text_layers,
                          num_attention_heads=max(1, cfg.text_hidden_size // 32),
                          max_position_embeddings=cfg.max_text_length, bos_token_id=0, eos_token_id=1,
                          pad_token_id=1, projection_dim=cfg.projection_dim)
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(),
                        projection_dim=cfg.projection_dim)
    torch.manual_seed(derive_seed(cfg.seed, 1))
    return CLIPModel(config)


def _captions(items, cfg: BackbonePretrainConfig) -> list[str]:
    texts = [it.record.text for it in items]
    missing = sum(t is None for t in texts)
    if missing:
        raise DataError(f"{missing} of {len(texts)} rows have no caption ('text'); run `synthmed caption` first",
                        Path(cfg.data) / "metadata.jsonl")
    return texts  # type: ignore[return-value]


def contrastive_loss(img: torch.Tensor, txt: torch.Tensor, same: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric CLIP loss with multi-positive soft targets.

    Args:
        img, txt: (B, C) L2-normalised embeddings.
        same: (B, B) bool, True where rows i and j have the same caption (diagonal True).
        scale: The logit scale (exp of the learnt log-temperature).
    """
    logits = scale * img @ txt.t()  # (B, B)
    target = same.float() / same.float().sum(dim=1, keepdim=True)
    return 0.5 * (torch.sum(-target * F.log_softmax(logits, 1), 1).mean()
                  + torch.sum(-target.t() * F.log_softmax(logits.t(), 1), 1).mean())


@writes_to(first_argument("cfg", "out"))
def pretrain_backbone(cfg: BackbonePretrainConfig) -> Path:
    """Train the small CLIP on ``cfg.data`` and save it to ``cfg.out`` (resumable per epoch)."""
    from transformers import CLIPImageProcessor, CLIPTokenizer

    cfg.check()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    items = load_items(cfg.data, cfg.split)
    texts = _captions(items, cfg)
    normal, abnormal = prompt_ensemble()
    out = Path(cfg.out)
    outdir.make_locked(out)
    tokenizer = train_clip_tokenizer(texts + normal + abnormal, vocab_size=cfg.vocab_size,
                                     max_length=cfg.max_text_length)
    device = resolve_device(cfg.device)
    model = build_clip(cfg, len(tokenizer)).to(device)
    backbone = ClipBackbone(model=model, tokenizer=tokenizer, source=str(out), image_size=cfg.image_size,
                            mean=CLIP_MEAN, std=CLIP_STD, stage_layers=default_stage_layers(cfg.num_layers))
    pixels = torch.cat([backbone.preprocess([it.image for it in items[i:i + 256]])
                        for i in range(0, len(items), 256)])  # (N, 3, S, S), preprocessed once
    labels = np.array([it.label or 0 for it in items])
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused_option(params))
    steps_per_epoch = max(1, len(items) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch,
                                                pct_start=0.1)
    start_epoch = 0
    ckpt = out / CHECKPOINT
    if cfg.resume:
        warn_if_pickled(out / LEGACY_CHECKPOINT, logger)
    if cfg.resume and has_training_state(ckpt):
        state = load_training_state(ckpt)
        model.load_state_dict(state.tensors["model"])
        opt.load_state_dict(state.optimizer)
        sched.load_state_dict(state.scheduler)
        start_epoch = int(state.meta["epoch"])
        tokenizer = CLIPTokenizer.from_pretrained(ckpt / "tokenizer")
        backbone.tokenizer = tokenizer
        logger.info("resuming backbone pretraining at epoch %d", start_epoch)
    model.train()
    model.requires_grad_(True)
    t0 = time.perf_counter()
    bar = tqdm(total=cfg.epochs * steps_per_epoch, initial=start_epoch * steps_per_epoch, desc="pretrain CLIP",
               disable=not cfg.progress)
    last = float("nan")
    for epoch in range(start_epoch, cfg.epochs):
        rng = np.random.default_rng(derive_seed(cfg.seed, 2, epoch))
        order = rng.permutation(len(items))
        for b in range(steps_per_epoch):
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            batch_text = [texts[i] if rng.random() >= cfg.prompt_mix
                          else str(rng.choice(abnormal if labels[i] else normal)) for i in idx]
            tok = tokenizer(batch_text, padding="max_length", truncation=True, max_length=cfg.max_text_length,
                            return_tensors="pt").to(device)
            img_out = model.vision_model(pixel_values=pixels[idx])
            img = F.normalize(model.visual_projection(img_out.pooler_output), dim=-1)
            txt_out = model.text_model(input_ids=tok.input_ids, attention_mask=tok.attention_mask)
            txt = F.normalize(model.text_projection(txt_out.pooler_output), dim=-1)
            same = torch.tensor([[a == c for c in batch_text] for a in batch_text], device=device)
            loss = contrastive_loss(img, txt, same, model.logit_scale.exp().clamp(max=100.0))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            last = float(loss.detach())
            bar.update(1)
            bar.set_postfix(loss=f"{last:.3f}")
        save_training_state(ckpt, tensors={"model": model.state_dict()}, optimizer=opt, scheduler=sched,
                            meta={"epoch": epoch + 1},
                            extra=lambda d, tok=tokenizer: tok.save_pretrained(d / "tokenizer"))
    bar.close()
    model.eval()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    side = cfg.image_size
    CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side},
                       image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD)).save_pretrained(out)
    apply_umask(out)
    write_json_atomic(out / "synthmed.json", provenance(
        kind="localize-backbone", config=cfg.model_dump(mode="json"), data_hash=hash_dataset(cfg.data),
        final_loss=last, train_images=len(items), seconds=round(time.perf_counter() - t0, 1)))
    card_after_training(out)
    shutil.rmtree(ckpt, ignore_errors=True)
    logger.info("saved from-scratch CLIP backbone to %s", out)
    return out
