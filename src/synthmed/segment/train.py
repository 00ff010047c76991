"""``synthmed train segmenter``: a lesion segmenter from image + mask pairs, on the shared training loop.

Per step: a micro-batch from an epoch permutation, each image with a random brightness gain
and contrast gamma (keeping black black, as :mod:`synthmed.train.ldm.augment`) and a random
left-right flip (a segmenter does not name sides), then binary cross-entropy plus a
batch-level soft Dice (:func:`synthmed.localize.losses.dice_loss`). Every draw is a function
of (seed, step), so a resumed run retraces an uninterrupted one (:mod:`synthmed.train.ldm.loop`).
After training, the threshold that maximises pixel Dice on the validation rows is stored in
the model's config.

Output: ``OUT/config.json`` + ``OUT/model.safetensors``, ``OUT/synthmed.json`` (provenance,
validation metrics), ``OUT/checkpoints/``, ``OUT/README.md`` (model card).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from pydantic import Field

from synthmed.data.dataset import hash_dataset
from synthmed.errors import DataError
from synthmed.localize.losses import dice_loss
from synthmed.localize.metrics import auroc, best_dice_threshold, threshold_metrics
from synthmed.segment.model import CONFIG_FILE, WEIGHTS_FILE, LesionSegmenter, SegmenterConfig
from synthmed.share.card import card_after_training
from synthmed.train.ldm.config import StageConfig
from synthmed.train.ldm.data import load_training_data
from synthmed.train.ldm.loop import StagePlan, run_stage
from synthmed.train.ldm.optim import build_optimizer
from synthmed.train.ldm.randomness import EpochSampler, derive_seed, stage_key, step_generator
from synthmed.utils.configs import dump_yaml
from synthmed.utils.device import torch_threads
from synthmed.utils.outdir import first_argument, prepare_out_dir, writes_to
from synthmed.utils.provenance import provenance, write_json_atomic

logger = logging.getLogger(__name__)

_OWNED = ("checkpoints", "logs", CONFIG_FILE, WEIGHTS_FILE, "synthmed.json", "train_config.yaml", "README.md")


class SegmenterTrainConfig(StageConfig):
    """``synthmed train segmenter`` (YAML, flags or Python).

    Attributes:
        data: Dataset directory whose rows have lesion masks (an empty mask: no lesion).
        out: Output folder.
        split, val_split: Rows to train on and to calibrate the threshold on (None: every row / no calibration).
        brightness, contrast: Intensity augmentation (gain in 1 ± brightness, gamma up to 1 + contrast).
        flip: Random left-right flips.
    """

    data: Path
    out: Path
    model: SegmenterConfig = SegmenterConfig()
    split: str | None = "train"
    val_split: str | None = "val"
    max_steps: int | None = Field(1500, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(2e-3, gt=0)
    warmup_steps: int = Field(50, ge=0)
    brightness: float = Field(0.15, ge=0, lt=1)
    contrast: float = Field(0.15, ge=0)
    flip: bool = True
    seed: int = 0
    threads: int | None = Field(None, ge=1)
    checkpoint_every: int = Field(250, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    log_every: int = Field(10, ge=1)
    resume: bool = False
    overwrite: bool = False
    progress: bool = True


def load_pairs(root: str | Path, split: str | None, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 1, S, S) grayscale images in [0, 1] and (N, 1, S, S) masks in {0, 1} of a dataset's rows.

    Raises:
        DataError: no rows in the split, colour images, or a row without a mask (named).
    """
    data = load_training_data(root, resolution=resolution, split=split, use_paraphrases=False, require_captions=False)
    if data.masks is None:
        from synthmed.data.dataset import ImageDataset

        rows = [r for r in ImageDataset(root).records if split is None or r.split in (split, None)]
        first = next((r.file_name for r in rows if not r.mask_file_name), "?")
        raise DataError(f"row {first!r} has no mask_file_name: a segmenter learns from image + mask pairs",
                        Path(root) / "metadata.jsonl")
    if data.channels != 1:
        raise DataError("the segmenter reads grayscale slices; this dataset is in colour", Path(root))
    return (data.images + 1.0) / 2.0, (data.masks > 0.5).float()


def _augment(x: torch.Tensor, cfg: SegmenterTrainConfig, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    b = x.shape[0]
    gain = 1.0 + cfg.brightness * (2.0 * torch.rand(b, 1, 1, 1, generator=g) - 1.0)
    gamma = (math.log1p(cfg.contrast) * (2.0 * torch.rand(b, 1, 1, 1, generator=g) - 1.0)).exp()
    flip = torch.rand(b, generator=g) < 0.5 if cfg.flip else torch.zeros(b, dtype=torch.bool)
    return (gain * x.clamp(0, 1).pow(gamma)).clamp(0, 1), flip


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus batch-level soft Dice of (B, 1, H, W) logits against masks."""
    return F.binary_cross_entropy_with_logits(logits, target) + dice_loss(torch.sigmoid(logits)[:, 0], target[:, 0])


def calibrate(model: LesionSegmenter, images: torch.Tensor, masks: torch.Tensor) -> dict:
    """Threshold maximising pixel Dice on ``images``; the pixel metrics there."""
    probs = model.predict(images[:, 0].numpy())
    target = masks[:, 0].numpy() > 0.5
    thr = best_dice_threshold(target, probs)
    figures = threshold_metrics(target, probs >= thr)
    return {"threshold": thr, "n_images": len(images), "pixel_auroc": auroc(target.ravel(), probs.ravel()),
            "pixel_dice": figures["dice"], "pixel_iou": figures["iou"]}


def fit_segmenter(images: torch.Tensor, masks: torch.Tensor, cfg: SegmenterTrainConfig, *,
                  val: tuple[torch.Tensor, torch.Tensor] | None = None,
                  digest: str = "") -> tuple[LesionSegmenter, dict]:
    """Train a segmenter on (N, 1, S, S) images in [0, 1] and masks; calibrate on ``val``. Returns (model, record)."""
    from accelerate import Accelerator

    multi_cpu = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    accelerator = Accelerator(cpu=multi_cpu)
    torch.manual_seed(derive_seed(cfg.seed, stage_key("segmenter")))
    model = LesionSegmenter(cfg.model)
    world = accelerator.num_processes
    sampler = EpochSampler(len(images), seed=cfg.seed, stage="segmenter", batch_size=cfg.batch_size, world=world)

    def loss_fn(net, step: int, micro: int) -> torch.Tensor:
        g = step_generator(cfg.seed, "segmenter", step, micro, accelerator.process_index)
        idx = sampler.indices(step, micro, accelerator.process_index)
        x, flip = _augment(images[idx], cfg, g)
        y = masks[idx]
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        y = torch.where(flip[:, None, None, None], y.flip(-1), y)
        return segmentation_loss(net(x.to(accelerator.device)), y.to(accelerator.device))

    plan = StagePlan(name="segmenter", max_steps=cfg.max_steps, deadline=None,
                     checkpoint_dir=cfg.out / "checkpoints", digest=digest, checkpoint_every=cfg.checkpoint_every,
                     keep_checkpoints=cfg.keep_checkpoints, log_every=cfg.log_every, progress=cfg.progress,
                     resume=cfg.resume, images_per_step=cfg.batch_size * world)
    result = run_stage(accelerator, model=model, optimizer=build_optimizer(model.parameters(), cfg), cfg=cfg,
                       plan=plan, loss_fn=loss_fn)
    model = accelerator.unwrap_model(model).cpu().eval()
    record = {"steps": result.steps, "last_loss": result.last_loss, "seconds": result.seconds}
    if val is not None and len(val[0]):
        record["calibration"] = calibrate(model, *val)
        model.config = model.config.model_copy(update={"threshold": record["calibration"]["threshold"]})
    return model, record


def _digest(cfg: SegmenterTrainConfig, data_hash: str) -> str:
    import hashlib

    blob = cfg.model_dump(mode="json", exclude={"out", "data", "max_steps", "resume", "overwrite", "progress",
                                                "threads", "checkpoint_every", "keep_checkpoints", "log_every"})
    blob["model"].pop("threshold", None)
    return hashlib.sha256(json.dumps({**blob, "data": data_hash}, sort_keys=True).encode()).hexdigest()


@writes_to(first_argument("config", "out"))
def train_segmenter(config: SegmenterTrainConfig) -> Path:
    """Train a lesion segmenter on a dataset's image + mask pairs and save it to ``config.out``.

    Raises:
        DataError: the dataset is missing, in colour, or a row has no mask.
        ConfigError: the output folder is not empty (and neither resume nor overwrite is set).
        TrainingError: the loss became NaN or infinite.
    """
    cfg = config.model_copy(update={"out": Path(config.out), "data": Path(config.data)})
    t0 = time.monotonic()
    with torch_threads(cfg.threads):
        images, masks = load_pairs(cfg.data, cfg.split, cfg.model.resolution)
        val = load_pairs(cfg.data, cfg.val_split, cfg.model.resolution) if cfg.val_split else None
        data_hash = hash_dataset(cfg.data)
        prepare_out_dir(cfg.out, resume=cfg.resume, overwrite=cfg.overwrite, owned=_OWNED)
        dump_yaml(cfg, cfg.out / "train_config.yaml")
        model, record = fit_segmenter(images, masks, cfg, val=val, digest=_digest(cfg, data_hash))
    model.save_pretrained(cfg.out)
    write_json_atomic(cfg.out / "synthmed.json", provenance(
        kind="segmenter", config=cfg.model_dump(mode="json"), seed=cfg.seed,
        data={"path": str(cfg.data), "hash": data_hash, "rows": len(images), "split": cfg.split,
              "lesion_rows": int(masks.flatten(1).any(1).sum())},
        result=record, calibration=_card_calibration(record, cfg.val_split),
        parameters=sum(p.numel() for p in model.parameters()), wall_seconds=time.monotonic() - t0))
    card_after_training(cfg.out)
    if "calibration" in record:
        c = record["calibration"]
        logger.info("segmenter: %s split, threshold %.2f, pixel Dice %.3f, pixel AUROC %.4f", cfg.val_split,
                    c["threshold"], c["pixel_dice"] or 0.0, c["pixel_auroc"] or float("nan"))
    return cfg.out


def _card_calibration(record: dict, split: str | None) -> dict | None:
    """The validation figures in the shape model cards read (``calibration.metrics``)."""
    c = record.get("calibration")
    if not c:
        return None
    return {"split": split, "metrics": {"n_images": c["n_images"], "metrics": {
        k: {"value": c[k]} for k in ("pixel_dice", "pixel_iou", "pixel_auroc") if c.get(k) is not None}}}

