"""``synthmed demo``: the pipeline runner (``synthmed run``) with a built-in config, offline, on a CPU.

Stages, each writing into the run directory:

1. ``data/phantom`` — the phantom brain-MRI benchmark (images, masks, true findings);
2. ``data/real`` — a copy captioned with the ``mask`` captioner, as a user would caption real
   scans (the ground truth stays in ``original_findings``), scored against the truth;
3. ``model`` — a text-conditioned latent diffusion model (MSDM-style): its UNet trained from
   scratch on the latents of the shipped first stage (:data:`DEMO_AUTOENCODER`);
4. ``data/synthetic`` — a generated set whose findings follow the real data's distribution;
5. ``eval/adherence``, ``eval/fidelity`` — prompt adherence judged by the shipped findings
   judge ``builtin:phantom-128-robust`` (trained on real phantom slices only; a fixed instrument, as
   Inception is for FID, so demos are comparable and no budget goes to training it), and
   fidelity (Fréchet distance, KID, precision/recall) against the real slices.

``summary.json`` and ``summary.md`` report what was done and measured; ``run.json`` is the
runner's provenance record, and ``synthmed report`` turns the directory into one HTML page.
Rerunning with the same options skips every unchanged stage.

The LDM's first stage is the shipped :data:`DEMO_AUTOENCODER`; its UNet trains for a fixed,
seeded number of steps (:data:`DEMO_UNET_STEPS`), so the same
command gives the same model and the same figures on every machine (a quiet and a busy run
trained bit-identical weights); it took 9 minutes on a quiet 2-core CPU, 15 with another
process busy on one of the cores for most of the run. ``--minutes``
adds a wall-time cap: the diffusion model then trains with ``minutes: auto`` (what is left
after the earlier stages and the reserves of generation and evaluation), at most the fixed
steps, so a slow machine stops early and its figures depend on its speed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthmed.errors import ConfigError
from synthmed.utils.provenance import provenance, write_json_atomic

logger = logging.getLogger(__name__)

#: Share of the budget (minutes) kept for everything but latent-diffusion training.
_RESERVED_MINUTES = {"phantom+caption": 1.0, "generate": 1.25, "evaluate": 0.5}
#: The adherence judge, shipped with synthmed (see synthmed.judge.io). It was trained on a 4,000-slice
#: phantom with seed 0, which shares slices with the demo's real data; it only ever reads generated
#: images here, and its own accuracy comes from its held-out test split. The robust one, trained so that
#: blur and noise are not read as a tumour: on one demo's 127 images whose prompt asked for no tumour,
#: the first judge saw a tumour in 104, this one in 39.
DEMO_JUDGE = "builtin:phantom-128-robust"
#: Sampler of the demo's generated set. An ancestral sampler (fresh noise at every step) corrects part of
#: what a briefly trained UNet gets wrong. On one demo model (3,678 UNet steps) and 256 balanced prompts,
#: over three seeds: guidance 5 gave presence 0.855-0.922 and hemisphere 0.805-0.829, guidance 6 gave
#: 0.914-0.926 and 0.845-0.859 (docs/ldm.md, "Sampling the demo model"). DPM-Solver++ at guidance 3, the
#: earlier setting, gave 0.738 / 0.651 on an earlier model that Euler ancestral at guidance 5 takes to
#: 0.852-0.863 / 0.750-0.807.
DEMO_SAMPLER = {"scheduler": "euler-ancestral", "guidance_scale": 6.0}
#: The demo LDM's first stage: an autoencoder trained once, for longer than a demo could, on a phantom
#: of other patients (seed 1; benchmarks/train_phantom_vae.py) and shipped in the package, as the judge
#: is. The demo's budget then goes to the UNet; "A trained first stage" in docs/ldm.md has the A/B.
DEMO_AUTOENCODER = "builtin:phantom-vae-128"
#: UNet optimizer steps (batch 16), fixed so that the figures do not depend on the machine's speed.
#: Sized on measured speeds (docs/ldm.md, "The demo now"): a fresh install on a slow shared 2-core
#: CPU ran 2,630 UNet and about 1,000 autoencoder steps in 14 min 30 s of demo; the shipped first
#: stage frees the autoencoder's share for UNet steps.
DEMO_UNET_STEPS = 3600
_MIN_LDM_MINUTES = 2.0


@dataclass
class DemoConfig:
    """Settings of the offline demo.

    Attributes:
        out: Run directory.
        quick: A smoke-test run (tiny data and budgets, under 2 minutes).
        minutes: Optional wall-time cap; latent-diffusion training then gets what the other
            stages do not need, at most its fixed steps. None (default): fixed steps only.
        seed: Seed of every stage.
        n_images: Phantom slices (default: 1200, or 96 with ``quick``).
        size: Image size in pixels (64 at most with ``quick``).
        n_generated: Images to generate (default: 256, or 16 with ``quick``).
    """

    out: Path
    quick: bool = False
    minutes: float | None = None
    seed: int = 0
    n_images: int | None = None
    size: int = 128
    n_generated: int | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.minutes is not None and self.minutes <= 0:
            raise ConfigError(f"minutes must be positive, got {self.minutes}")
        if self.n_images is None:
            self.n_images = 96 if self.quick else 1200
        if self.quick:
            self.size = min(self.size, 64)
        if self.n_generated is None:
            self.n_generated = 16 if self.quick else 256
        if not self.quick and self.minutes is not None \
                and self.minutes - sum(_RESERVED_MINUTES.values()) < _MIN_LDM_MINUTES:
            raise ConfigError(f"--minutes {self.minutes} leaves under {_MIN_LDM_MINUTES} minutes to train the "
                              f"diffusion model; give at least {sum(_RESERVED_MINUTES.values()) + _MIN_LDM_MINUTES:.0f}"
                              " or use --quick")


def demo_pipeline(cfg: DemoConfig) -> dict[str, Any]:
    """The built-in demo as a pipeline config (a mapping :class:`~synthmed.pipeline.PipelineConfig` validates).

    ``configs/run-demo.yaml`` is this mapping for the default (15-minute) demo.
    """
    if cfg.quick:  # a small network and a few steps: proves the path, not the quality
        ldm: dict[str, Any] = {
            "resolution": cfg.size, "tensorboard": True, "num_samples": 4, "sample_steps": 5,
            "autoencoder": {"model": {"block_out_channels": [8, 16, 16], "norm_num_groups": 4, "latent_channels": 4},
                            "max_steps": 20, "batch_size": 4, "crop_size": 32, "warmup_steps": 2},
            "unet": {"model": {"block_out_channels": [16, 32], "attention": [False, True], "norm_num_groups": 8},
                     "max_steps": 30, "batch_size": 8, "warmup_steps": 2}}
    else:
        # A shorter token sequence (the mask captioner's captions have at most 39 tokens) makes each
        # UNet step cheaper.
        ldm = {"resolution": cfg.size, "tensorboard": True, "max_text_length": 48,
               "pretrained_autoencoder": DEMO_AUTOENCODER, "unet": {"max_steps": DEMO_UNET_STEPS}}
        if cfg.minutes is not None:  # a wall-time cap: the steps above are then an upper bound
            ldm["minutes"] = "auto"
    return {
        "name": "synthmed demo" + (" (quick)" if cfg.quick else ""),
        "description": "The offline demo: a phantom brain-MRI benchmark, captioned from its masks; a "
                       "text-conditioned latent diffusion model trained from scratch on the real training split; "
                       "a generated set scored for prompt adherence (by the shipped findings judge) and fidelity.",
        "out": str(cfg.out),
        "seed": cfg.seed,
        "minutes": cfg.minutes,
        "min_auto_minutes": _MIN_LDM_MINUTES,
        "stages": [
            {"name": "phantom", "kind": "data.phantom", "out": "data/phantom",
             "settings": {"n": cfg.n_images, "size": cfg.size}},
            {"name": "caption", "kind": "caption", "out": "data/real",
             "settings": {"data": "${phantom}", "captioner": "mask"}},
            {"name": "train_ldm", "kind": "train.ldm", "out": "model", "settings": {"data": "${caption}", **ldm}},
            {"name": "generate", "kind": "generate", "out": "data/synthetic",
             "reserve_minutes": _RESERVED_MINUTES["generate"],
             "settings": {"model": "${train_ldm}", "findings_grid": "balanced:${caption}",
                          "num_prompts": cfg.n_generated, "n_per_prompt": 1, "steps": 10 if cfg.quick else 25,
                          **DEMO_SAMPLER, "batch_size": 16}},
            {"name": "adherence", "kind": "evaluate.adherence", "out": "eval/adherence",
             "reserve_minutes": _RESERVED_MINUTES["evaluate"] / 4,
             "settings": {"fake": "${generate}", "judge": DEMO_JUDGE}},
            {"name": "fidelity", "kind": "evaluate.fidelity", "out": "eval/fidelity",
             "reserve_minutes": _RESERVED_MINUTES["evaluate"] * 3 / 4,
             "settings": {"real": "${caption}", "fake": "${generate}", "features": "efficientnet-lite0",
                          "bootstrap": 0 if cfg.quick else 50}},
        ],
    }


def run_demo(cfg: DemoConfig, *, force: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run the demo into ``cfg.out`` (skipping unchanged stages) and return the summary (summary.json/.md)."""
    from synthmed.pipeline.config import load_pipeline_config
    from synthmed.pipeline.runner import run_pipeline

    pipeline = load_pipeline_config(data=demo_pipeline(cfg))
    result = run_pipeline(pipeline, cfg.out, force=force)
    cfg.timings.update({s.name: s.seconds for s in result.stages})
    by_name = {s.name: s for s in result.stages}
    summary: dict[str, Any] = {"config": {"quick": cfg.quick, "minutes": cfg.minutes, "seed": cfg.seed,
                                          "n_images": cfg.n_images, "size": cfg.size,
                                          "n_generated": cfg.n_generated}}
    summary["captioner_accuracy"] = by_name["caption"].summary.get("accuracy_vs_original", {})
    summary["judge_real_test_accuracy"] = by_name["adherence"].summary.get("judge_real_test_accuracy", {})
    summary["adherence"] = _adherence(json.loads((cfg.out / "eval" / "adherence" / "adherence.json").read_text()))
    model_record = json.loads((cfg.out / "model" / "synthmed.json").read_text())
    summary["ldm_steps"] = {name: (stage or {}).get("steps", (stage or {}).get("pretrained"))
                            for name, stage in model_record["stages"].items()}  # a given first stage: its name
    summary["fidelity"] = _headline(json.loads((cfg.out / "eval" / "fidelity" / "fidelity.json").read_text()))
    summary["stages"] = {s.name: s.status for s in result.stages}
    summary["timings_s"] = {**cfg.timings, "total": result.seconds}
    summary["provenance"] = provenance()
    write_json_atomic(cfg.out / "summary.json", summary)
    (cfg.out / "summary.md").write_text(_markdown(summary))
    return summary


def _adherence(record: dict[str, Any]) -> dict[str, Any]:
    """Per attribute: accuracy, n and its Wilson 95 % interval (attributes the judge cannot score are left out)."""
    from synthmed.classify.metrics import wilson_interval

    out: dict[str, Any] = {}
    for name, a in record.get("attributes", {}).items():
        if a.get("n"):
            out[name] = {"accuracy": a["accuracy"], "n": a["n"],
                         "ci95": [round(x, 4) for x in wilson_interval(a["correct"], a["n"])]}
    return out


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

    def shown(v: Any) -> str:
        if isinstance(v, dict) and "accuracy" in v:
            ci = v.get("ci95")
            return shown(v["accuracy"]) + (f" {shown(ci)}" if ci else "")
        if isinstance(v, float):
            return f"{v:.3f}"
        if isinstance(v, list | tuple):
            return "[" + ", ".join(shown(x) for x in v) + "]"
        return str(v)

    def table(title: str, values: dict[str, Any], header: str = "attribute") -> None:
        lines.extend([f"## {title}", "", f"| {header} | value |", "|---|---|"])
        lines.extend(f"| {k} | {shown(v)} |" for k, v in values.items() if not k.endswith("_ci95"))
        lines.append("")

    def with_intervals(values: dict[str, Any]) -> dict[str, Any]:
        """``fid`` and ``fid_ci95`` -> one row ``fid``: ``value [low, high]``."""
        return {k: (f"{shown(v)} {shown(values[k + '_ci95'])}" if k + "_ci95" in values else v)
                for k, v in values.items()}

    table("Mask captioner vs phantom ground truth", summary.get("captioner_accuracy", {}))
    table("Judge accuracy on real test images", summary.get("judge_real_test_accuracy", {}))
    table("Prompt adherence of generated images (judged, 95 % interval)", summary.get("adherence", {}))
    table("Fidelity vs real images (95 % bootstrap interval)", with_intervals(summary.get("fidelity", {})),
          header="metric")
    table("Training steps of the diffusion model", summary.get("ldm_steps", {}), header="stage")
    lines += ["## Timings (s)", ""] + [f"- {k}: {v}" for k, v in summary["timings_s"].items()]
    return "\n".join(lines) + "\n"
