"""``synthmed generate``: a labelled synthetic dataset from a text-to-image model."""

from __future__ import annotations

from pathlib import Path

import typer


def generate_command(
    model: str = typer.Option(..., "--model", help="Diffusers pipeline folder or hub id."),
    out: Path = typer.Option(..., "--out", help="Dataset directory to write (reruns resume)."),
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
                                  help="ddpm, ddim, dpm-solver++, euler, euler-ancestral, unipc, pndm."),
    seed: int = typer.Option(0, "--seed", help="Base seed; image i gets a seed derived from (seed, i)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Images per pipeline call."),
    lora: list[str] = typer.Option([], "--lora", help="LoRA folder or file (repeatable)."),
    embedding: list[str] = typer.Option([], "--embedding", help="Textual-inversion file (repeatable)."),
    negative_prompt: str | None = typer.Option(None, "--negative-prompt", help="Negative prompt."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, ..."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
) -> None:
    """Generate images for prompts, a findings grid or a dataset's findings; write a dataset directory."""
    from synthmed.generate import GenerateConfig, generate
    from synthmed.utils.configs import load_config

    cfg = load_config(GenerateConfig, None, {
        "model": model, "out": str(out), "prompts": list(prompt) or None,
        "prompts_file": str(prompts_file) if prompts_file else None, "findings_grid": findings_grid,
        "num_prompts": num_prompts, "n_per_prompt": n_per_prompt, "steps": steps, "guidance_scale": guidance_scale,
        "scheduler": scheduler, "seed": seed, "batch_size": batch_size, "loras": list(lora) or None,
        "embeddings": list(embedding) or None, "negative_prompt": negative_prompt, "device": device,
        "progress": not no_progress})
    path = generate(cfg)
    typer.echo(f"generated dataset in {path}")
