"""``synthmed generate``: a labelled synthetic dataset from a text-to-image model."""

from __future__ import annotations

from pathlib import Path

import typer

from synthmed.cli.options import NO_PROGRESS
from synthmed.generate.schedulers import scheduler_names


def generate_command(
    model: str = typer.Option(None, "--model", help="Diffusers pipeline folder or hub id."),
    out: Path = typer.Option(None, "--out", help="Dataset directory to write (reruns resume)."),
    prior: str | None = typer.Option(None, "--prior",
                                     help="Kandinsky 2.2 prior (folder or hub id) when --model is its decoder."),
    prompt: list[str] = typer.Option([], "--prompt", help="A prompt (repeatable)."),
    prompts_file: Path | None = typer.Option(None, "--prompts", help="Text file, one prompt per line."),
    findings_grid: str | None = typer.Option(
        None, "--findings-grid",
        help="'default', a spec like 'presence x hemisphere x size x shape', or 'balanced:DATASET_DIR'."),
    num_prompts: int | None = typer.Option(None, "--num-prompts", help="With balanced:DIR, prompts to draw."),
    n_per_prompt: int = typer.Option(1, "--n-per-prompt", help="Images per prompt."),
    steps: int = typer.Option(25, "--steps", help="Sampling steps."),
    guidance_scale: float = typer.Option(3.0, "--guidance-scale", help="Classifier-free guidance scale."),
    scheduler: str = typer.Option("dpm-solver++", "--scheduler",
                                  help=", ".join(scheduler_names()) + "."),
    seed: int = typer.Option(0, "--seed", help="Base seed; image i gets a seed derived from (seed, i)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Images per pipeline call."),
    lora: list[str] = typer.Option([], "--lora", help="LoRA folder or file (repeatable)."),
    lora_scale: float = typer.Option(1.0, "--lora-scale", help="Weight of every --lora adapter."),
    embedding: list[str] = typer.Option([], "--embedding", help="Textual-inversion file (repeatable)."),
    interpolate_to: str | None = typer.Option(
        None, "--interpolate-to", help="Interpolate from the (single) --prompt to this prompt (seed 002 fig. 2)."),
    interpolation_points: int = typer.Option(5, "--interpolation-points", help="Images along the interpolation."),
    inpaint_image: Path | None = typer.Option(None, "--inpaint-image",
                                              help="Paint the (single) --prompt into this image (seed 002 fig. 4)."),
    inpaint_mask: list[Path] = typer.Option([], "--inpaint-mask", help="Mask PNG, white = repaint (repeatable)."),
    strength: float = typer.Option(1.0, "--strength", help="Inpainting strength (1: from pure noise)."),
    negative_prompt: str | None = typer.Option(None, "--negative-prompt", help="Negative prompt."),
    height: int | None = typer.Option(None, "--height", help="Image height in pixels (default: the model's)."),
    width: int | None = typer.Option(None, "--width", help="Image width in pixels (default: the model's)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, ..."),
    acquisition_noise: str = typer.Option(
        "auto", "--acquisition-noise", help="auto: re-synthesise the scanner noise stored with the model "
        "(noise_model.json from train ldm) on each grayscale image; off: leave the images noise-free."),
    num_shards: int = typer.Option(1, "--num-shards", min=1,
                                   help="Split the run into K shards (a job array); this process makes --shard."),
    shard: int | None = typer.Option(None, "--shard", min=0, help="Which shard (0-based) this process makes."),
    merge: Path | None = typer.Option(None, "--merge", help="Merge the finished shards in this folder, then stop."),
    controlnet: str | None = typer.Option(None, "--controlnet",
                                          help="Lesion-mask ControlNet (synthmed train controlnet) for --model."),
    masks: Path | None = typer.Option(None, "--masks", help="One image per mask: a dataset directory (its rows' masks "
                                      "and captions) or a folder of mask PNGs (one --prompt, or one prompt per mask)."),
    masks_from_findings: bool = typer.Option(False, "--masks-from-findings",
                                             help="Draw each image's lesion mask from its prompt's findings."),
    controlnet_scale: float = typer.Option(1.0, "--controlnet-scale", help="Weight of the ControlNet."),
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Generate images for prompts, a findings grid or a dataset's findings; write a dataset directory.

    With --interpolate-to or --inpaint-image it makes an interpolation row or inpainted images instead.
    With --num-shards K --shard i it makes one shard of the run (merge them with --merge OUT); under
    `accelerate launch` each process makes its own shard and the main process merges.
    With --masks or --masks-from-findings and a model that reads masks (--controlnet, or a model from
    `train ldm --condition mask`) each image is drawn around a lesion mask, written beside it (mask_file_name).
    """
    from synthmed.errors import ConfigError
    from synthmed.generate import GenerateConfig, generate
    from synthmed.utils.configs import load_config

    if merge is not None:
        from synthmed.generate import merge as merge_shards

        typer.echo(f"merged dataset in {merge_shards(merge)}")
        return
    for flag, value in (("--model", model), ("--out", out)):
        if value is None:
            raise ConfigError(f"{flag} is required (only --merge goes without it)")

    if interpolate_to is not None or inpaint_image is not None:
        _extras(model=model, out=out, prompt=prompt, interpolate_to=interpolate_to, points=interpolation_points,
                inpaint_image=inpaint_image, inpaint_mask=inpaint_mask, strength=strength,
                common={"loras": list(lora), "lora_scale": lora_scale, "embeddings": list(embedding), "prior": prior,
                        "steps": steps, "guidance_scale": guidance_scale, "scheduler": scheduler, "seed": seed,
                        "negative_prompt": negative_prompt, "height": height, "width": width, "device": device})
        return

    cfg = load_config(GenerateConfig, None, {
        "model": model, "prior": prior, "out": str(out), "prompts": list(prompt) or None,
        "prompts_file": str(prompts_file) if prompts_file else None, "findings_grid": findings_grid,
        "num_prompts": num_prompts, "n_per_prompt": n_per_prompt, "steps": steps, "guidance_scale": guidance_scale,
        "scheduler": scheduler, "seed": seed, "batch_size": batch_size, "loras": list(lora) or None,
        "lora_scale": lora_scale,
        "embeddings": list(embedding) or None, "negative_prompt": negative_prompt, "height": height, "width": width,
        "device": device, "acquisition_noise": acquisition_noise, "progress": not no_progress,
        "num_shards": num_shards, "shard": shard, "controlnet": controlnet, "masks": str(masks) if masks else None,
        "masks_from_findings": masks_from_findings, "controlnet_scale": controlnet_scale})
    path = generate(cfg)
    typer.echo(f"generated dataset in {path}")


def _extras(*, model, out, prompt, interpolate_to, points, inpaint_image, inpaint_mask, strength, common) -> None:
    """Interpolation or inpainting (synthmed.generate.extras)."""
    from synthmed.errors import ConfigError
    from synthmed.generate.extras import InpaintConfig, InterpolationConfig, inpaint, interpolate
    from synthmed.utils.configs import load_config

    if interpolate_to is not None and inpaint_image is not None:
        raise ConfigError("--interpolate-to and --inpaint-image exclude each other")
    if len(prompt) != 1:
        raise ConfigError(f"give exactly one --prompt with --interpolate-to / --inpaint-image (got {len(prompt)})")
    if interpolate_to is not None:
        cfg = load_config(InterpolationConfig, None, {"model": model, "out": str(out), "prompt_from": prompt[0],
                                                      "prompt_to": interpolate_to, "num_points": points, **common})
        path = interpolate(cfg)
    else:
        if not inpaint_mask:
            raise ConfigError("--inpaint-image needs at least one --inpaint-mask")
        cfg = load_config(InpaintConfig, None, {"model": model, "out": str(out), "prompt": prompt[0],
                                                "image": str(inpaint_image), "masks": [str(m) for m in inpaint_mask],
                                                "strength": strength, **common})
        path = inpaint(cfg)
    typer.echo(f"generated dataset in {path}")
