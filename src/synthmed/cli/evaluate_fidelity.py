"""``synthmed evaluate fidelity`` and ``synthmed evaluate privacy``."""

from __future__ import annotations

from pathlib import Path

import typer

from synthmed.features.registry import extractor_names

_FEATURES_HELP = (f"Feature extractor: {', '.join(extractor_names())}. 'auto' = inception if its weights are on this "
                  "machine, else efficientnet-lite0 (offline, not comparable with published FIDs).")


def fidelity_command(
    real: Path = typer.Option(..., "--real", help="Real dataset directory."),
    fake: Path = typer.Option(..., "--fake", help="Generated dataset directory."),
    out: Path = typer.Option(Path("metrics.json"), "--out", "-o", help="Where to write metrics.json."),
    features: str = typer.Option("auto", "--features", "-f", help=_FEATURES_HELP),
    weights: Path | None = typer.Option(None, "--weights", help="Weights file of the extractor (inception: "
                                        "pt_inception-2015-12-05-6726825d.pth)."),
    preprocessing: str | None = typer.Option(None, "--preprocessing",
                                             help="Inception convention: torch-fidelity (default), clean-fid, "
                                                  "torchmetrics."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Feature cache (default $SYNTHMED_FEATURE_CACHE "
                                          "or ~/.cache/synthmed/features)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write cached real features."),
    bootstrap: int = typer.Option(100, "--bootstrap", help="Bootstrap replicates for 95% intervals (0: none)."),
    seed: int = typer.Option(2020, "--seed", help="Seed of KID subsets and IS splits (torch-fidelity: 2020)."),
    kid_subsets: int = typer.Option(100, "--kid-subsets", help="KID subsets."),
    kid_subset_size: int = typer.Option(1000, "--kid-subset-size", help="KID subset size (shrinks when n is smaller)."),
    k: int = typer.Option(3, "--k", help="k of precision/recall."),
    dc_k: int = typer.Option(5, "--dc-k", help="k of density/coverage."),
    batch_size: int = typer.Option(32, "--batch-size", help="Images per forward pass."),
    device: str = typer.Option("cpu", "--device", help="Torch device."),
    download: bool = typer.Option(False, "--download", help="Download missing Inception weights (when online)."),
    no_verify_weights: bool = typer.Option(False, "--no-verify-weights",
                                           help="Accept Inception weights with another SHA-256 "
                                                "(marked not comparable)."),
    trust_encoder_code: bool = typer.Option(False, "--trust-encoder-code",
                                            help="Let a domain encoder's config.json import code outside synthmed."),
    min_group: int = typer.Option(10, "--min-group", help="Smallest group of the per-finding breakdown."),
) -> None:
    """FID, KID, IS, precision/recall/F1, density/coverage with intervals, floor and per-finding breakdown."""
    from synthmed.evaluate.fidelity_run import evaluate_fidelity

    res = evaluate_fidelity(dict(
        real=real, fake=fake, out=out, features=features, weights=weights, preprocessing=preprocessing,
        cache_dir=cache_dir, use_cache=not no_cache, bootstrap=bootstrap, seed=seed, kid_subsets=kid_subsets,
        kid_subset_size=kid_subset_size, pr_k=k, dc_k=dc_k, batch_size=batch_size, device=device,
        allow_download=download, verify_weights=not no_verify_weights, trust_code=trust_encoder_code,
        min_group=min_group, progress=True))
    shown = [f"{k} {res.metrics[k].text(4)}" if k in res.metrics else f"{k} -"
             for k in ("fid", "kid", "precision", "recall", "f1", "density", "coverage")]
    label = res.extractor["name"] + ("" if res.comparable_with_published else " (not comparable with "
                                                                             "published FIDs)")
    typer.echo(f"features: {label}; n_real {res.n_real}, n_fake {res.n_fake}")
    typer.echo("  ".join(shown))
    if res.real_vs_real is not None:
        typer.echo(f"real-vs-real floor (n={res.real_vs_real.n}): FID {res.real_vs_real.metrics['fid'].text(4)}")
    typer.echo(f"wrote {out}")


def privacy_command(
    train: Path = typer.Option(..., "--train", help="Training dataset directory (what the generator saw)."),
    fake: Path = typer.Option(..., "--fake", help="Generated dataset directory."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (privacy.json, pairs/*.png)."),
    test: Path | None = typer.Option(None, "--test",
                                     help="Held-out real images (default: split=test rows of --train)."),
    features: str = typer.Option("auto", "--features", "-f", help=_FEATURES_HELP),
    weights: Path | None = typer.Option(None, "--weights", help="Weights file of the extractor."),
    pixel_size: int = typer.Option(64, "--pixel-size", help="Side of the grayscale images compared in pixel space."),
    quantile: float = typer.Option(0.0, "--quantile", help="Flag synthetic images closer to training than this "
                                   "quantile of held-out-to-train distances (0: closer than every held-out image)."),
    max_pairs: int = typer.Option(50, "--max-pairs", help="Most side-by-side PNGs to save."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Feature cache directory."),
    batch_size: int = typer.Option(32, "--batch-size", help="Images per forward pass."),
    device: str = typer.Option("cpu", "--device", help="Torch device."),
    no_verify_weights: bool = typer.Option(False, "--no-verify-weights", help="Accept unverified Inception weights."),
) -> None:
    """Nearest-training-neighbour memorisation audit: flags likely copies and saves them side by side."""
    from synthmed.evaluate.privacy import evaluate_privacy

    res = evaluate_privacy(dict(
        train=train, fake=fake, out=out, test=test, features=features, weights=weights, pixel_size=pixel_size,
        quantile=quantile, max_pairs=max_pairs, cache_dir=cache_dir, batch_size=batch_size, device=device,
        verify_weights=not no_verify_weights, progress=True))
    typer.echo(f"memorisation fraction {res.memorisation.text()} ({res.likely_copies} of "
               f"{res.n_synthetic} synthetic images flagged); reference: {res.reference}")
    typer.echo(f"wrote {out / res.FILE}" + (f" and {len(res.pairs)} pairs in {out / 'pairs'}" if res.pairs else ""))
