"""``synthmed paraphrase``: checked paraphrases of every caption, stored beside ``text``."""

from __future__ import annotations

from pathlib import Path

import typer

from synthmed.cli.caption import model_options
from synthmed.cli.options import API_CONCURRENCY, API_MAX_RETRIES, API_TIMEOUT, HF_DEVICE
from synthmed.paraphrase import paraphrase_dataset


def paraphrase_command(
    data: Path = typer.Argument(..., help="Captioned dataset directory (paraphrases are written in place)."),
    paraphraser: str = typer.Option("template", "--paraphraser", "-p",
                                    help="template, hf:<text model> or api:<model>."),
    per_caption: int = typer.Option(5, "--per-caption", "-k", help="Paraphrases requested per caption."),
    modality: str = typer.Option("brain_mri", "--modality", help="Modality of rows without findings."),
    batch_size: int = typer.Option(16, "--batch-size", help="Captions per paraphraser call."),
    append: bool = typer.Option(False, "--append", help="Keep existing paraphrases and add new ones."),
    seed: int = typer.Option(0, "--seed", help="Seed of the template paraphraser / LLM decoding."),
    base_url: str = typer.Option(None, "--base-url", help="api: server (default $SYNTHMED_API_BASE); key from "
                                 "$SYNTHMED_API_KEY or $OPENAI_API_KEY."),
    concurrency: int = API_CONCURRENCY,
    timeout: float = API_TIMEOUT,
    max_retries: int = API_MAX_RETRIES,
    max_new_tokens: int = typer.Option(400, "--max-new-tokens", help="LLM reply length limit."),
    device: str = HF_DEVICE,
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the LLM reply cache."),
) -> None:
    """Add paraphrases to every caption; each is parsed back and kept only if its findings are unchanged."""
    options = model_options(paraphraser, base_url=base_url, timeout=timeout, max_retries=max_retries,
                            concurrency=concurrency, max_new_tokens=max_new_tokens, seed=seed, device=device,
                            trust_remote_code=False)
    if paraphraser == "template":
        options = {"seed": seed}
    s = paraphrase_dataset(data, paraphraser, per_caption=per_caption, modality=modality, batch_size=batch_size,
                           append=append, cache=not no_cache, **options)
    typer.echo(f"{s.accepted} of {s.proposed} paraphrases kept ({s.rejected} rejected: they changed the findings "
               f"or could not be read) on {s.paraphrased_rows} of {s.rows} rows; unique prompts "
               f"{s.unique_before} -> {s.unique_after}"
               + (f"; {len(s.skipped)} rows skipped" if s.skipped else "")
               + (f"; {len(s.failed)} rows failed" if s.failed else ""))
    for reason, n in s.rejection_reasons.most_common(5):
        typer.echo(f"  rejected {n}: {reason}")
