"""``synthmed demo``: the whole pipeline on the built-in benchmark, offline, on a CPU.

Stages, each writing into the run directory:

1. ``data/real`` — the phantom brain-MRI benchmark (images, masks, true findings);
2. caption it with the ``mask`` captioner, as a user would caption real scans (the ground
   truth stays in ``original_findings``), and score the captioner against the truth;
3. ``judge`` — a findings judge trained on the real training split only;
4. ``model`` — a text-conditioned latent diffusion model trained from scratch (MSDM-style);
5. ``data/synthetic`` — a generated set whose findings follow the real data's distribution;
6. ``eval/`` — prompt adherence judged by the judge, and fidelity (Fréchet distance, KID,
   precision/recall) against the held-out real test images.

``summary.json`` and ``summary.md`` report what was done and measured. The time budget
(``--minutes``) is shared: fixed-cost stages are estimated and the latent diffusion model
gets what is left.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthmed.caption import caption_dataset
from synthmed.data import read_records
from synthmed.data.phantom import PhantomConfig, generate_phantom
from synthmed.errors import ConfigError
from synthmed.evaluate import attribute_agreement
from synthmed.utils.provenance import provenance, write_json_atomic

logger = logging.getLogger(__name__)

#: Share of the budget (minutes) kept for everything but latent-diffusion training.
_RESERVED_MINUTES = {"phantom+caption": 1.0, "judge": 2.0, "generate": 1.5, "evaluate": 1.0}
_MIN_LDM_MINUTES = 2.0


@dataclass
class DemoConfig:
    """Settings of the offline demo.

    Attributes:
        out: Run directory.
        quick: A smoke-test run (tiny data and budgets, under 2 minutes).
        minutes: Total wall-time budget; latent-diffusion training gets what the other
            stages do not need.
        seed: Seed of every stage.
        n_images: Phantom slices (default: 1200, or 96 with ``quick``).
        size: Image size in pixels (64 at most with ``quick``).
        n_generated: Images to generate (default: 256, or 16 with ``quick``).
    """

    out: Path
    quick: bool = False
    minutes: float = 15.0
    seed: int = 0
    n_images: int | None = None
    size: int = 128
    n_generated: int | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.minutes <= 0:
            raise ConfigError(f"minutes must be positive, got {self.minutes}")
        if self.n_images is None:
            self.n_images = 96 if self.quick else 1200
        if self.quick:
            self.size = min(self.size, 64)
        if self.n_generated is None:
            self.n_generated = 16 if self.quick else 256
        if not self.quick and self.minutes - sum(_RESERVED_MINUTES.values()) < _MIN_LDM_MINUTES:
            raise ConfigError(f"--minutes {self.minutes} leaves under {_MIN_LDM_MINUTES} minutes to train the "
                              f"diffusion model; give at least {sum(_RESERVED_MINUTES.values()) + _MIN_LDM_MINUTES:.0f}"
                              " or use --quick")

    def ldm_minutes(self, elapsed_s: float) -> float:
        """Minutes left for latent-diffusion training after ``elapsed_s`` seconds of earlier stages.

        Generation and evaluation keep their reserve, so the whole run stays within
        ``minutes`` even when an earlier stage ran slower than planned.
        """
        left = self.minutes - elapsed_s / 60 - _RESERVED_MINUTES["generate"] - _RESERVED_MINUTES["evaluate"]
        return max(left, _MIN_LDM_MINUTES)


@contextmanager
def _stage(cfg: DemoConfig, name: str):
    logger.info("demo stage: %s", name)
    t0 = time.perf_counter()
    yield
    cfg.timings[name] = round(time.perf_counter() - t0, 1)


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    """Run the demo into ``cfg.out`` and return the summary (also written to summary.json/.md)."""
    from synthmed.evaluate.adherence import AdherenceConfig, evaluate_adherence
    from synthmed.evaluate.fidelity_run import evaluate_fidelity
    from synthmed.generate import GenerateConfig, generate
    from synthmed.judge import JudgeTrainConfig, train_judge
    from synthmed.train.ldm import LDMTrainConfig, train_ldm

    started = time.perf_counter()
    cfg.out.mkdir(parents=True, exist_ok=True)
    real, synthetic = cfg.out / "data" / "real", cfg.out / "data" / "synthetic"
    judge_dir, model_dir, eval_dir = cfg.out / "judge", cfg.out / "model", cfg.out / "eval"
    summary: dict[str, Any] = {"config": {"quick": cfg.quick, "minutes": cfg.minutes, "seed": cfg.seed,
                                          "n_images": cfg.n_images, "size": cfg.size,
                                          "n_generated": cfg.n_generated}}

    with _stage(cfg, "phantom"):
        generate_phantom(PhantomConfig(out=real, n=cfg.n_images, size=cfg.size, seed=cfg.seed))
    with _stage(cfg, "caption"):
        caption_dataset(real, "mask")
        scores = attribute_agreement((r.findings, r.original_findings) for r in read_records(real))
        summary["captioner_accuracy"] = {name: {"accuracy": agg.accuracy, "n": agg.n}
                                         for name, agg in scores.items() if agg.n and agg.missing < agg.n}

    with _stage(cfg, "judge"):
        report = train_judge(JudgeTrainConfig(data=real, out=judge_dir, preset="quick" if cfg.quick else "cpu",
                                              seed=cfg.seed, epochs=4 if cfg.quick else 8,
                                              image_size=None if cfg.quick else 96))
        summary["judge_real_test_accuracy"] = {k: v.accuracy for k, v in report.real_test.items() if v.n}

    with _stage(cfg, "train_ldm"):
        if cfg.quick:  # a small network and a few steps: proves the path, not the quality
            ldm = LDMTrainConfig(
                data=real, out=model_dir, seed=cfg.seed, resolution=cfg.size, overwrite=True, tensorboard=False,
                num_samples=4, sample_steps=5,
                autoencoder={"model": {"block_out_channels": [8, 16, 16], "norm_num_groups": 4, "latent_channels": 4},
                             "max_steps": 20, "batch_size": 4, "crop_size": 32, "warmup_steps": 2},
                unet={"model": {"block_out_channels": [16, 32], "attention": [False, True], "norm_num_groups": 8},
                      "max_steps": 30, "batch_size": 8, "warmup_steps": 2})
        else:
            ldm = LDMTrainConfig(data=real, out=model_dir, seed=cfg.seed, resolution=cfg.size,
                                 minutes=cfg.ldm_minutes(time.perf_counter() - started), overwrite=True)
        train_ldm(ldm)

    with _stage(cfg, "generate"):
        generate(GenerateConfig(model=str(model_dir), out=synthetic, findings_grid=f"balanced:{real}",
                                num_prompts=cfg.n_generated, n_per_prompt=1, steps=10 if cfg.quick else 25,
                                scheduler="dpm-solver++", guidance_scale=3.0, seed=cfg.seed, batch_size=16))

    with _stage(cfg, "evaluate"):
        adherence = evaluate_adherence(AdherenceConfig(fake=synthetic, judge=judge_dir,
                                                       out=eval_dir / "adherence.json"), progress=False)
        summary["adherence"] = {k: v.accuracy for k, v in adherence.agreements.items() if v.n}
        fidelity = evaluate_fidelity({"real": real, "fake": synthetic, "out": eval_dir / "fidelity.json",
                                      "features": "efficientnet-lite0", "bootstrap": 0 if cfg.quick else 50,
                                      "cache_dir": cfg.out / "cache"})
        summary["fidelity"] = _headline(fidelity)

    summary["timings_s"] = {**cfg.timings, "total": round(time.perf_counter() - started, 1)}
    summary["provenance"] = provenance()
    write_json_atomic(cfg.out / "summary.json", summary)
    (cfg.out / "summary.md").write_text(_markdown(summary))
    return summary


def _headline(fidelity: dict[str, Any]) -> dict[str, Any]:
    """The few fidelity numbers worth a summary line (the full record is in eval/fidelity.json)."""
    out: dict[str, Any] = {"features": fidelity["extractor"]["name"]}
    for key, metric in fidelity["metrics"].items():
        if key in ("fid", "kid", "precision", "recall", "f1", "density", "coverage"):
            out[key] = metric.get("value", metric.get("mean"))
            if metric.get("ci95"):
                out[f"{key}_ci95"] = metric["ci95"]
    floor = fidelity.get("real_vs_real") or {}
    if floor.get("fid") is not None:
        out["fid_real_vs_real"] = floor["fid"]  # the floor any generator is measured against
    return out


def _markdown(summary: dict[str, Any]) -> str:
    lines = ["# synthmed demo", ""]

    def table(title: str, values: dict[str, Any]) -> None:
        lines.extend([f"## {title}", "", "| attribute | value |", "|---|---|"])
        for k, v in values.items():
            shown = v["accuracy"] if isinstance(v, dict) and "accuracy" in v else v
            lines.append(f"| {k} | {shown:.3f} |" if isinstance(shown, float) else f"| {k} | {shown} |")
        lines.append("")

    table("Mask captioner vs phantom ground truth", summary.get("captioner_accuracy", {}))
    table("Judge accuracy on real test images", summary.get("judge_real_test_accuracy", {}))
    table("Prompt adherence of generated images (judged)", summary.get("adherence", {}))
    table("Fidelity vs real images", summary.get("fidelity", {}))
    lines += ["## Timings (s)", ""] + [f"- {k}: {v}" for k, v in summary["timings_s"].items()]
    return "\n".join(lines) + "\n"
