"""Training the stage decoders (and optionally the last backbone layers) on lesion masks."""

from __future__ import annotations

import logging
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from synthmed.classify.augment import AugmentConfig, augment_batch
from synthmed.data.dataset import hash_dataset
from synthmed.errors import ConfigError, DataError, TrainingError
from synthmed.localize.backbone import ClipBackbone, load_backbone
from synthmed.localize.config import LocalizeTrainConfig
from synthmed.localize.data import LocalizeItem, load_items
from synthmed.localize.localizer import CONFIG_FILE, WEIGHTS_FILE, Localizer, LocalizerConfig, save_localizer
from synthmed.localize.losses import localization_loss
from synthmed.localize.metrics import LocalizationMetrics, best_dice_threshold
from synthmed.localize.model import (
    StageDecoders,
    combine_stages,
    image_loss,
    image_scores,
    map_maxima,
    zero_shot_score,
)
from synthmed.localize.prompts import prompt_ensemble
from synthmed.share.card import card_after_training
from synthmed.utils.configs import dump_yaml
from synthmed.utils.device import resolve_device
from synthmed.utils.optim import decay_tail_factor, fused_option
from synthmed.utils.outdir import first_argument, prepare_out_dir, writes_to
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

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_NAME = "last"  # a training-state directory (utils/training_state.py)
LEGACY_CHECKPOINT = "last.pt"  # pickled by earlier synthmed: never loaded
BACKBONE_DIR = "backbone"


#: What a localiser run writes in its ``--out``: all that ``--overwrite`` removes.
_OWNED = (CHECKPOINT_DIR, BACKBONE_DIR, CONFIG_FILE, WEIGHTS_FILE, "synthmed.json", "train_config.yaml")


def _prepare_out(cfg: LocalizeTrainConfig) -> Path:
    out = Path(cfg.out)
    prepare_out_dir(out, resume=bool(cfg.resume), overwrite=bool(cfg.overwrite), owned=_OWNED)
    return out


def _backbone(cfg: LocalizeTrainConfig, out: Path) -> tuple[ClipBackbone, str]:
    """Load the backbone, pretraining the from-scratch CLIP first when asked (reused on resume)."""
    name = str(cfg.backbone)
    if name == "scratch":
        from synthmed.localize.scratch import BackbonePretrainConfig, pretrain_backbone

        target = out / BACKBONE_DIR
        if not (target / "config.json").is_file():
            opts = {"data": cfg.data, "out": target, "seed": cfg.seed, "threads": cfg.threads, "device": cfg.device,
                    "progress": cfg.progress, "resume": True, **cfg.scratch}
            pretrain_backbone(BackbonePretrainConfig.model_validate(opts))
        name = str(target)
    return load_backbone(name, cfg.stage_layers, device=resolve_device(cfg.device)), name


def _unfreeze_last_layers(backbone: ClipBackbone, n: int) -> list[torch.nn.Parameter]:
    if n > backbone.num_layers:
        raise ConfigError(f"train_backbone_layers={n} but the vision tower has {backbone.num_layers} layers")
    vision = backbone.model.vision_model
    params: list[torch.nn.Parameter] = []
    for layer in vision.encoder.layers[backbone.num_layers - n:]:
        params += _unfreeze(layer)
    return params + _unfreeze(vision.post_layernorm)


def _unfreeze(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    params = list(module.parameters())
    for p in params:
        p.requires_grad_(True)
    return params


def _mask_batch(items: list[LocalizeItem], size: int) -> torch.Tensor:
    """(B, S, S) float masks resized by area and re-binarised at 0.5."""
    m = torch.stack([torch.from_numpy(it.mask.astype(np.float32)) for it in items])[:, None]
    return (F.interpolate(m, size=(size, size), mode="area")[:, 0] >= 0.5).float()


def _augment(pixels: torch.Tensor, masks: torch.Tensor, cfg: AugmentConfig, seed: int
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment (B, 3, S, S) images in [0, 1] and their (B, S, S) masks alike (masks re-binarised at 0.5).

    Seeded per step, so a resumed run draws the same transforms as an uninterrupted one.
    """
    if not cfg.enabled:
        return pixels, masks
    gen = torch.Generator().manual_seed(seed)
    pixels, maps = augment_batch(pixels, cfg, gen, {"mask": masks[:, None]})
    return pixels, (maps["mask"][:, 0] >= 0.5).float()


def _save_checkpoint(path: Path, decoders, opt, backbone: ClipBackbone, epoch: int, step: int,
                     losses: list[float]) -> None:
    trainable = {n for n, p in backbone.model.named_parameters() if p.requires_grad}
    backbone_state = {k: v for k, v in backbone.model.state_dict().items() if k in trainable}
    save_training_state(path, tensors={"decoders": decoders.state_dict(), "backbone": backbone_state},
                        optimizer=opt, meta={"epoch": epoch, "step": step, "losses": losses})


def _require_lesions(items: list[LocalizeItem], cfg: LocalizeTrainConfig) -> None:
    """Refuse a split whose every mask is empty: a localiser learnt from it would only ever say "healthy"."""
    if not any(it.mask is not None and bool(np.any(it.mask)) for it in items):
        raise DataError(f"every mask of split {cfg.train_split!r} is empty ({len(items)} healthy images, no lesion "
                        "pixel); the localiser needs images with lesions to learn from",
                        Path(cfg.data) / "metadata.jsonl")


@writes_to(first_argument("cfg", "out"))
def train_localizer(cfg: LocalizeTrainConfig) -> Path:
    """Train the localiser on ``cfg.data`` and save a model directory to ``cfg.out``.

    Returns:
        The model directory (``config.json``, ``decoders.safetensors``, ``synthmed.json``,
        and ``backbone/`` when the backbone was pretrained here or partly trained).
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    items = load_items(cfg.data, cfg.train_split, need_masks=True)  # check data before loading any model
    _require_lesions(items, cfg)
    out = _prepare_out(cfg)
    dump_yaml(cfg, out / "train_config.yaml")
    backbone, backbone_name = _backbone(cfg, out)
    normal, abnormal = prompt_ensemble()
    text = backbone.ensemble_text_features(normal, abnormal)  # Ft (2, C), fixed
    torch.manual_seed(derive_seed(cfg.seed, 3))
    decoders = StageDecoders(len(backbone.stage_layers), backbone.vision_hidden_size, backbone.projection_dim,
                             cfg.decoder_hidden, cfg.temperature, bool(cfg.center_text)).to(text.device)
    groups = [{"params": list(decoders.parameters()), "lr": cfg.lr}]
    n_train_bb = int(cfg.train_backbone_layers or 0)
    image_weight = float(cfg.image_loss_weight or 0.0)
    backbone_params = _unfreeze_last_layers(backbone, n_train_bb) if n_train_bb else []
    if image_weight > 0 and cfg.image_score != "map-max":  # a trained zero-shot score: train Fc's projection
        backbone_params += _unfreeze(backbone.model.visual_projection)
    if backbone_params:
        groups.append({"params": backbone_params, "lr": cfg.backbone_lr})
    trains_backbone = bool(backbone_params)
    logit_scale = backbone.logit_scale()
    opt = torch.optim.Adam(groups, betas=tuple(cfg.betas), **fused_option(groups))  # type: ignore[arg-type]
    bs = int(cfg.batch_size)  # type: ignore[arg-type]
    steps_per_epoch = -(-len(items) // bs)
    total_steps = int(cfg.epochs) * steps_per_epoch  # type: ignore[arg-type]
    decay_steps = min(int(cfg.lr_decay_epochs or 0), int(cfg.epochs)) * steps_per_epoch  # type: ignore[arg-type]
    base_lrs = [g["lr"] for g in groups]
    ckpt_dir = out / CHECKPOINT_DIR
    ckpt_dir.mkdir(exist_ok=True)
    ckpt = ckpt_dir / CHECKPOINT_NAME
    epoch0 = step0 = 0
    losses: list[float] = []
    if cfg.resume:
        warn_if_pickled(ckpt_dir / LEGACY_CHECKPOINT, logger)
    if cfg.resume and has_training_state(ckpt):
        state = load_training_state(ckpt)
        decoders.load_state_dict(state.tensors["decoders"])
        opt.load_state_dict(state.optimizer)
        backbone.model.load_state_dict(state.tensors["backbone"], strict=False)
        epoch0, step0, losses = int(state.meta["epoch"]), int(state.meta["step"]), list(state.meta["losses"])
        logger.info("resuming localiser training at epoch %d step %d", epoch0, step0)
    size = backbone.image_size
    augment = cfg.augment or AugmentConfig()
    t0 = time.perf_counter()
    n_seen = 0
    bar = tqdm(total=total_steps, initial=epoch0 * steps_per_epoch + step0,  # type: ignore[operator]
               desc="localiser", disable=not cfg.progress)
    decoders.train()
    for epoch in range(epoch0, int(cfg.epochs)):  # type: ignore[arg-type]
        order = np.random.default_rng(derive_seed(cfg.seed, 4, epoch)).permutation(len(items))
        for step in range(step0 if epoch == epoch0 else 0, steps_per_epoch):
            batch = [items[i] for i in order[step * bs:(step + 1) * bs]]
            pixels, target = _augment(backbone.resize([it.image for it in batch]), _mask_batch(batch, size),
                                      augment, derive_seed(cfg.seed, 5, epoch, step))
            pixels, target = backbone.normalize(pixels), target.to(text.device)
            with torch.set_grad_enabled(trains_backbone):
                fc, stages = backbone.image_features(pixels)
            probs = decoders.stage_probs(stages, text, (size, size))
            loss = localization_loss(probs, target)
            if image_weight > 0:
                zero_shot = zero_shot_score(fc, decoders.joint_text(text), logit_scale)
                score = image_scores(zero_shot, map_maxima(combine_stages(probs)), str(cfg.image_score))
                labels = torch.tensor([it.label for it in batch], device=text.device)
                loss = loss + image_weight * image_loss(score, labels)
            value = float(loss.detach())
            if not math.isfinite(value):
                bar.close()
                last_ckpt = ckpt if has_training_state(ckpt) else "none"
                raise TrainingError(f"localiser loss is {value} at epoch {epoch + 1}, step {step + 1}; stopping "
                                    f"without saving (last checkpoint: {last_ckpt}). "
                                    f"Lower --lr (now {cfg.lr:g}) or --backbone-lr (now {cfg.backbone_lr:g}).")
            factor = decay_tail_factor(epoch * steps_per_epoch + step, total_steps, decay_steps)
            for group, base_lr in zip(opt.param_groups, base_lrs, strict=True):
                group["lr"] = base_lr * factor
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(value)
            n_seen += len(batch)
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            if (step + 1) % cfg.checkpoint_every == 0:
                _save_checkpoint(ckpt, decoders, opt, backbone, epoch, step + 1, losses)
        _save_checkpoint(ckpt, decoders, opt, backbone, epoch + 1, 0, losses)
    bar.close()
    train_seconds = time.perf_counter() - t0
    decoders.eval()
    backbone.model.requires_grad_(False)

    if trains_backbone or backbone_name == str(out / BACKBONE_DIR):
        if backbone_name != str(out / BACKBONE_DIR):
            (out / BACKBONE_DIR).mkdir(exist_ok=True)
            backbone.tokenizer.save_pretrained(out / BACKBONE_DIR)
            src_pre = Path(backbone_name) / "preprocessor_config.json"
            if src_pre.is_file():
                shutil.copy(src_pre, out / BACKBONE_DIR / "preprocessor_config.json")
        backbone.model.save_pretrained(out / BACKBONE_DIR, safe_serialization=True)
        apply_umask(out / BACKBONE_DIR)
        backbone_ref = BACKBONE_DIR
    else:
        backbone_ref = backbone_name
    lcfg = LocalizerConfig(backbone=backbone_ref, stage_layers=backbone.stage_layers, image_size=size,
                           temperature=cfg.temperature, decoder_hidden=cfg.decoder_hidden,
                           center_text=bool(cfg.center_text), test_time_flip=bool(cfg.test_time_flip),
                           test_time_shift=int(cfg.test_time_shift or 0),
                           image_score=cfg.image_score, normal_prompts=normal, abnormal_prompts=abnormal)  # type: ignore[arg-type]
    localizer = Localizer(lcfg, backbone, decoders, text)
    calib_split = cfg.val_split
    try:
        calib = load_items(cfg.data, calib_split, need_masks=True) if calib_split else items
    except Exception:  # no val split with masks: calibrate on the training images
        calib_split, calib = cfg.train_split, items
    maps, scores = [], []
    for i in range(0, len(calib), bs):
        res = localizer.predict([it.image for it in calib[i:i + bs]], out_size=False)
        maps += [r.anomaly_map for r in res]
        scores += [r.image_score for r in res]
    targets = [_mask_batch([it], size)[0].numpy() > 0.5 for it in calib]
    lcfg.threshold = best_dice_threshold(np.concatenate([t.ravel() for t in targets]),
                                         np.concatenate([m.ravel() for m in maps]))
    acc = LocalizationMetrics(lcfg.threshold)
    for m, t, s, it in zip(maps, targets, scores, calib, strict=True):
        acc.update(m, t, s, it.label)
    calib_metrics = acc.compute()
    save_localizer(out, localizer)
    write_json_atomic(out / "synthmed.json", provenance(
        kind="localizer", config=cfg.model_dump(mode="json"), backbone=backbone.describe(),
        data_hash=hash_dataset(cfg.data), train_images=len(items), final_loss=losses[-1] if losses else None,
        loss_first_epoch=float(np.mean(losses[:steps_per_epoch])) if losses else None,
        loss_last_epoch=float(np.mean(losses[-steps_per_epoch:])) if losses else None,
        train_seconds=round(train_seconds, 1),
        train_images_per_second=round(n_seen / train_seconds, 2) if train_seconds > 0 else None,
        calibration={"split": calib_split, "metrics": calib_metrics.model_dump(mode="json")}))
    card_after_training(out)
    pixel_auroc = calib_metrics.metrics.get("pixel_auroc")
    logger.info("localiser saved to %s (threshold %.2f, %s pixel AUROC %s)", out, lcfg.threshold, calib_split,
                pixel_auroc.text() if pixel_auroc else "—")
    return out
