"""``synthmed caption`` and ``synthmed paraphrase``: findings, prompt text and paraphrases for a dataset."""

from __future__ import annotations

from pathlib import Path

import typer

from synthmed.caption import caption_dataset, captioner_names
from synthmed.cli.options import API_CONCURRENCY, API_MAX_RETRIES, API_TIMEOUT, HF_DEVICE
from synthmed.errors import ConfigError

_NAMES = ", ".join(n if n == "mask" else f"{n}:<model>" for n in captioner_names())


def model_options(name: str, *, base_url: str | None, timeout: float, max_retries: int, concurrency: int,
                  max_new_tokens: int, seed: int, device: str | None, trust_remote_code: bool) -> dict[str, object]:
    """The factory options that apply to a ``hf:`` or ``api:`` back end (none for others)."""
    prefix = name.partition(":")[0]
    if prefix == "api":
        return {"base_url": base_url, "timeout_s": timeout, "max_retries": max_retries,
                "concurrency": concurrency, "max_tokens": max_new_tokens, "seed": seed}
    if base_url:
        raise ConfigError(f"--base-url applies to api:<model> only, not {name!r}")
    if prefix == "hf":
        return {"device": device, "max_new_tokens": max_new_tokens, "seed": seed,
                "trust_remote_code": trust_remote_code}
    if trust_remote_code:
        raise ConfigError(f"--trust-remote-code applies to hf:<model> only, not {name!r}")
    return {}


def caption_command(
    data: Path = typer.Argument(..., help="Dataset directory to caption in place."),
    captioner: str = typer.Option("mask", "--captioner", "-c",
                                  help=f"Captioner: {_NAMES}."),
    modality: str = typer.Option("brain_mri", "--modality", help="Modality of rows without findings."),
    batch_size: int = typer.Option(16, "--batch-size", help="Images per call of a local model (api: captioners "
                                   "send one image per request, --concurrency at once)."),
    base_url: str = typer.Option(None, "--base-url", help="api: server, e.g. http://localhost:8000/v1 "
                                 "(default $SYNTHMED_API_BASE). The key is read from $SYNTHMED_API_KEY or "
                                 "$OPENAI_API_KEY only."),
    concurrency: int = API_CONCURRENCY,
    timeout: float = API_TIMEOUT,
    max_retries: int = API_MAX_RETRIES,
    parse_retries: int = typer.Option(1, "--parse-retries", help="Times an invalid reply is sent back for repair."),
    max_new_tokens: int = typer.Option(384, "--max-new-tokens", help="Reply length limit (hf:, api:)."),
    seed: int = typer.Option(0, "--seed", help="Seed (decoding is greedy)."),
    device: str = HF_DEVICE,
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code",
                                           help="hf: let the model repository run its own code (Ovis originals)."),
    cache: Path = typer.Option(None, "--cache", help="Reply cache file (default DIR/.synthmed/caption_cache.jsonl)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the reply cache."),
) -> None:
    """Caption every image of a dataset: `findings` and `text` are (re)written, originals kept."""
    options = model_options(captioner, base_url=base_url, timeout=timeout, max_retries=max_retries,
                            concurrency=concurrency, max_new_tokens=max_new_tokens, seed=seed, device=device,
                            trust_remote_code=trust_remote_code)
    if options:
        options["max_parse_retries"] = parse_retries
    summary = caption_dataset(data, captioner, modality=modality, batch_size=batch_size,
                              cache=False if no_cache else (cache or True), **options)
    typer.echo(f"captioned {summary.captioned} of {summary.rows} rows with '{summary.captioner}'"
               + (f" ({summary.cached} from the cache)" if summary.cached else "")
               + (f"; {summary.failed} failed (see caption_error)" if summary.failed else ""))
