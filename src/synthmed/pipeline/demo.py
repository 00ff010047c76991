"""``synthmed demo``: the pipeline runner (``synthmed run``) with a built-in config, offline, on a CPU.

Stages, each writing into the run directory:

1. ``data/phantom`` — the phantom brain-MRI benchmark (images, masks, true findings);
2. ``data/real`` — a copy captioned with the ``mask`` captioner, as a user would caption real
   scans (the ground truth stays in ``original_findings``), scored against the truth;
3. ``model`` — a text-conditioned latent diffusion model (MSDM-style): its UNet trained from
   scratch on the latents of the shipped first stage (:data:`DEMO_AUTOENCODER`);
4. ``data/synthetic`` — a generated set whose findings follow the real data's distribution;
5. ``eval/adherence``, ``eval/fidelity``, ``eval/fidelity-domain`` — prompt adherence judged by
   the shipped findings judge ``builtin:phantom-128-robust`` (trained on real phantom slices only; a
   fixed instrument, as Inception is for FID, so demos are comparable and no budget goes to training
   it), and fidelity (Fréchet distance, KID, precision/recall) against the real slices, on
   EfficientNet-Lite0 features and on the judge's own embedding (a medical-domain FD);
6. with ``--preset quality``: a UNet trained for :data:`QUALITY_UNET_STEPS` steps, 840 generated
   images, and ``eval/downstream``: classifiers trained on real (TRTR) and on synthetic images
   (TSTR), tested on held-out real patients.

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
from typing import Any, Literal

from synthmed.errors import ConfigError
from synthmed.pipeline.registry import get_stage
from synthmed.results import Metric
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
#: what a briefly trained UNet gets wrong; guidance trades adherence against realism. Chosen on the
#: validation split by benchmarks/select_sampler.py (prompts from the val slices' findings, seed 1, FD
#: against the val slices only; highest mean presence/hemisphere/lobe adherence, FD breaking ties
#: within 0.01): guidance 4 (docs/ldm.md, "Sampler and guidance chosen on the validation split").
DEMO_SAMPLER = {"scheduler": "euler-ancestral", "guidance_scale": 4.0}
#: The demo LDM's first stage: an autoencoder trained once, for longer than a demo could, on a phantom
#: of other patients (seed 1; benchmarks/train_phantom_vae.py) and shipped in the package, as the judge
#: is. The demo's budget then goes to the UNet; "A trained first stage" in docs/ldm.md has the A/B.
DEMO_AUTOENCODER = "builtin:phantom-vae-128-gan"
#: UNet optimizer steps (batch 16), fixed so that the figures do not depend on the machine's speed.
#: Sized on measured speeds (docs/ldm.md, "The demo now"): a fresh install on a slow shared 2-core
#: CPU ran 2,630 UNet and about 1,000 autoencoder steps in 14 min 30 s of demo; the shipped first
#: stage frees the autoencoder's share for UNet steps.
DEMO_UNET_STEPS = 3600
#: The quality recipe (``synthmed demo --preset quality``): the demo's data and first stage, a UNet trained
#: for more fixed steps, as many generated images as real training slices (so TSTR trains on as many
#: images as TRTR), and the downstream protocol (TRTR vs TSTR, the ``cpu`` classifier, seeds 0-2).
QUALITY_UNET_STEPS = 16000
QUALITY_GENERATED = 840
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
        n_generated: Images to generate (default: 256, 840 with the quality preset, 16 with ``quick``).
        threads: torch CPU threads of every stage. None: the preset's — 1 for the default demo (one thread
            keeps a busy machine from thrashing: beside another busy process two threads ran the UNet 4.4x
            slower than on a quiet CPU, one thread 1.2x; and it keeps the core count out of the weights),
            torch's default (every core) for the quality recipe, which wants a machine to itself.
        preset: ``default`` (the 15-minute demo) or ``quality`` (longer training, the downstream
            classifiers; under an hour on a quiet 2-core CPU).
    """

    out: Path
    quick: bool = False
    preset: Literal["default", "quality"] = "default"
    minutes: float | None = None
    seed: int = 0
    n_images: int | None = None
    size: int = 128
    n_generated: int | None = None
    threads: int | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def torch_threads(self) -> int | None:
        """The threads every stage runs on (see ``threads``)."""
        if self.threads is not None:
            return self.threads
        return None if self.preset == "quality" else 1

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.minutes is not None and self.minutes <= 0:
            raise ConfigError(f"minutes must be positive, got {self.minutes}")
        if self.n_images is None:
            self.n_images = 96 if self.quick else 1200
        if self.quick:
            self.size = min(self.size, 64)
        if self.quick and self.preset != "default":
            raise ConfigError("--quick is a smoke test of the default demo; it takes no --preset")
        if self.n_generated is None:
            self.n_generated = 16 if self.quick else QUALITY_GENERATED if self.preset == "quality" else 256
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
        steps = QUALITY_UNET_STEPS if cfg.preset == "quality" else DEMO_UNET_STEPS
        ldm = {"resolution": cfg.size, "tensorboard": True, "max_text_length": 48,
               **({"threads": cfg.torch_threads} if cfg.torch_threads else {}),
               "pretrained_autoencoder": DEMO_AUTOENCODER, "unet": {"max_steps": steps}}
        if cfg.minutes is not None:  # a wall-time cap: the steps above are then an upper bound
            ldm["minutes"] = "auto"
    extra_stages = []
    if cfg.preset == "quality":
        extra_stages.append(
            {"name": "downstream", "kind": "evaluate.downstream", "out": "eval/downstream",
             "settings": {"real": "${caption}", "synthetic": "${generate}", "preset": "cpu", "seeds": [0, 1, 2],
                          "conditions": ["trtr", "tstr"]}})
    return {
        "name": "synthmed demo" + (" (quick)" if cfg.quick else " (quality)" if cfg.preset == "quality" else ""),
        "description": "The offline demo: a phantom brain-MRI benchmark, captioned from its masks; a "
                       "text-conditioned latent diffusion model trained from scratch on the real training split; "
                       "a generated set scored for prompt adherence (by the shipped findings judge) and fidelity.",
        "out": str(cfg.out),
        "seed": cfg.seed,
        "minutes": cfg.minutes,
        "min_auto_minutes": _MIN_LDM_MINUTES,
        "threads": cfg.torch_threads,
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
            {"name": "fidelity_domain", "kind": "evaluate.fidelity", "out": "eval/fidelity-domain",
             "settings": {"real": "${caption}", "fake": "${generate}", "features": f"judge:{DEMO_JUDGE}",
                          "bootstrap": 0 if cfg.quick else 50, "per_finding": False}},
            *extra_stages,
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
    summary: dict[str, Any] = {"config": {"quick": cfg.quick, "preset": cfg.preset, "minutes": cfg.minutes,
                                          "seed": cfg.seed,
                                          "n_images": cfg.n_images, "size": cfg.size,
                                          "n_generated": cfg.n_generated}}
    summary["captioner_accuracy"] = by_name["caption"].summary.get("accuracy_vs_original", {})
    summary["judge_real_test_accuracy"] = by_name["adherence"].summary.get("judge_real_test_accuracy", {})
    adherence, fidelity, domain = (
        get_stage(kind).read_result(cfg.out / "eval" / name) for kind, name in (
            ("evaluate.adherence", "adherence"), ("evaluate.fidelity", "fidelity"),
            ("evaluate.fidelity", "fidelity-domain")))
    summary["adherence"] = {k: _shown(m) for k, m in adherence.attributes.items() if m.n}
    model_record = json.loads((cfg.out / "model" / "synthmed.json").read_text())
    summary["ldm_steps"] = {name: (stage or {}).get("steps", (stage or {}).get("pretrained"))
                            for name, stage in model_record["stages"].items()}  # a given first stage: its name
    summary["fidelity"], summary["fidelity_domain"] = (
        {"features": result.extractor["name"],
         "metrics": {k: _shown(m) for k, m in result.metrics.items() if k in _FIDELITY_SHOWN},
         "real_vs_real_fid": result.real_vs_real.metrics["fid"].value if result.real_vs_real else None}  # the floor
        for result in (fidelity, domain))
    if "downstream" in by_name:
        downstream = get_stage("evaluate.downstream").read_result(cfg.out / "eval" / "downstream")
        summary["downstream"] = {
            "conditions": {name: {"n_real": c.n_real, "n_synthetic": c.n_synthetic,
                                  **{m: _shown(c.metrics[m]) for m in ("accuracy", "auroc") if m in c.metrics}}
                           for name, c in downstream.conditions.items()},
            "comparisons": {name: {m: _shown(c.metrics[m]) for m in ("accuracy", "auroc") if m in c.metrics}
                            for name, c in downstream.comparisons.items()}}
    summary["stages"] = {s.name: s.status for s in result.stages}
    summary["timings_s"] = {**cfg.timings, "total": result.seconds}
    summary["provenance"] = provenance()
    write_json_atomic(cfg.out / "summary.json", summary)
    (cfg.out / "summary.md").write_text(_markdown(summary))
    return summary


_FIDELITY_SHOWN = ("fid", "kid", "precision", "recall", "f1", "density", "coverage")


def _shown(m: Metric) -> dict[str, Any]:
    """A metric as summary.json records it: its value, interval and n (details stay in the stage result)."""
    return m.model_dump(mode="json", include={"value", "ci95", "n"})


def _markdown(summary: dict[str, Any]) -> str:
    lines = ["# synthmed demo", ""]

    def table(title: str, header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        lines.extend([f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)])
        lines.extend("| " + " | ".join(str(c) for c in row) + " |" for row in rows)
        lines.append("")

    def metric(d: dict[str, Any]) -> str:
        return Metric.model_validate(d).text()

    def accuracy(d: dict[str, Any]) -> str:
        return metric({"value": d["accuracy"], "ci95": d.get("ci95")}) if isinstance(d, dict) else metric(
            {"value": d})

    table("Mask captioner vs phantom ground truth", ("attribute", "accuracy", "n"),
          [(k, accuracy(v), v.get("n", "")) for k, v in summary.get("captioner_accuracy", {}).items()])
    table("Judge accuracy on real test images", ("attribute", "accuracy"),
          [(k, accuracy(v)) for k, v in summary.get("judge_real_test_accuracy", {}).items() if v is not None])
    table("Prompt adherence of generated images (judged)", ("attribute", "accuracy [95 % Wilson CI]", "n"),
          [(k, metric(v), v["n"]) for k, v in summary.get("adherence", {}).items()])
    for key in ("fidelity", "fidelity_domain"):
        fid = summary.get(key) or {}
        rows = [(k, metric(v)) for k, v in fid.get("metrics", {}).items()]
        if fid.get("real_vs_real_fid") is not None:
            rows.append(("fid, real vs real (the floor)", metric({"value": fid["real_vs_real_fid"]})))
        if rows:
            table(f"Fidelity vs real images ({fid.get('features')} features)", ("metric", "value [95 % bootstrap CI]"),
                  rows)
    down = summary.get("downstream")
    if down:
        table("Downstream: classifiers tested on held-out real patients", ("condition", "real", "synthetic",
              "accuracy [95 % CI]", "AUROC [95 % CI]"),
              [(k, c["n_real"], c["n_synthetic"], metric(c["accuracy"]), metric(c["auroc"]))
               for k, c in down["conditions"].items()])
        table("Downstream comparisons (paired bootstrap)", ("comparison", "accuracy [95 % CI]", "AUROC [95 % CI]"),
              [(k, metric(c["accuracy"]), metric(c["auroc"])) for k, c in down["comparisons"].items()])
    table("Training steps of the diffusion model", ("stage", "steps"), list(summary.get("ldm_steps", {}).items()))
    lines += ["## Timings (s)", ""] + [f"- {k}: {v}" for k, v in summary["timings_s"].items()]
    return "\n".join(lines) + "\n"
