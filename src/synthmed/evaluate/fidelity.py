"""Fidelity metrics on features: FID, KID, IS, precision/recall/F1, density/coverage.

Pure functions of (N, D) NumPy arrays or tensors. Conventions follow torch-fidelity 0.4 (see
``docs/evaluation-fidelity.md``), and where a library differs the choice is named here:

* **FID** (Heusel et al., 2017): ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))`` with float64
  means and unbiased (n - 1) covariances. ``tr (S1 S2)^(1/2)`` is computed without a general
  matrix square root: with ``S1 = L L'`` (Cholesky, or the symmetric eigen-square-root when S1
  is singular) the eigenvalues of ``S1 S2`` are those of the symmetric PSD ``L' S2 L``, so it is
  the sum of the square roots of ``eigvalsh(L' S2 L)``. When both sets have no more samples
  than dimensions, it is the nuclear norm of ``Xc Yc' / sqrt((n1 - 1)(n2 - 1))`` instead.
* **KID** (Bińkowski et al., 2018): unbiased MMD^2 with ``k(x, y) = (x.y / d + 1)^3``, averaged
  over 100 subsets of 1000 drawn without replacement by ``numpy.random.RandomState(2020)`` —
  fake indices first, then real, as torch-fidelity draws ``input1`` (generated) then ``input2``;
  the reported std is over subsets (``ddof=0``). With fewer than 1000 samples the subset size
  shrinks to ``min(n_real, n_fake)`` with a :class:`SmallSampleWarning` (torch-fidelity and
  torchmetrics raise an error instead; clean-fid shrinks silently).
* **IS** (Salimans et al., 2016): 10 splits of ``RandomState(2020).permutation`` shuffled logits,
  float64 softmax, split bounds ``i * N // splits``, std with ``ddof=0`` (torch-fidelity).
* **Precision / recall** (Kynkäänniemi et al., 2019): k = 3 nearest-neighbour balls (self
  excluded), membership with ``<=``; precision = fraction of fakes inside some real ball,
  recall = fraction of reals inside some fake ball; F1 = ``2PR / max(1e-5, P + R)``.
* **Density / coverage** (Naeem et al., 2020): k = 5 real balls, strict ``<``.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from synthmed.evaluate._pairwise import KernelSpec, PairwiseResult, pairwise_pass

logger = logging.getLogger(__name__)

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
SEED = 2020


class SmallSampleWarning(UserWarning):
    """A metric was computed on fewer samples than its convention assumes."""


def _as_2d(x: Any, name: str) -> torch.Tensor:
    t = x.detach().cpu() if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    if t.ndim != 2:
        raise ValueError(f"{name} must be a (N, D) array of features, got shape {tuple(t.shape)}")
    if not torch.is_floating_point(t):
        t = t.double()
    if not np.isfinite(t.numpy().sum()) and not np.isfinite(t.numpy()).all():   # one cheap reduction first
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def _pair(real: Any, fake: Any, min_n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    r, f = _as_2d(real, "real"), _as_2d(fake, "fake")
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"real and fake features differ in dimension: {r.shape[1]} vs {f.shape[1]}")
    for name, t in (("real", r), ("fake", f)):
        if t.shape[0] < min_n:
            raise ValueError(f"{name} needs at least {min_n} feature vectors, got {t.shape[0]}")
    return r, f


# -- FID --------------------------------------------------------------------------------------

def _gram_t(xc: np.ndarray) -> np.ndarray:
    """``xc' xc`` (D, D) in float64 with BLAS syrk (half the work of a general product)."""
    from scipy.linalg import blas

    upper = torch.from_numpy(blas.dsyrk(1.0, np.ascontiguousarray(xc).T, trans=0))  # (D, D), upper triangle
    return (torch.triu(upper) + torch.triu(upper, 1).T).numpy()


def feature_statistics(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), unbiased covariance (D, D)), both float64."""
    x = _as_2d(features, "features").double().numpy()
    if x.shape[0] < 2:
        raise ValueError(f"feature statistics need at least 2 samples, got {x.shape[0]}")
    mu = x.mean(0)
    return mu, _gram_t(x - mu) / (x.shape[0] - 1)


def _sandwich(factor: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``factor' s factor``; with a lower-triangular factor, two BLAS trmm (half the work of gemm)."""
    if not torch.equal(factor, factor.tril()):
        return factor.T @ s @ factor
    from scipy.linalg import blas

    lower = np.asfortranarray(factor.numpy())
    sl = blas.dtrmm(1.0, lower, np.asfortranarray(s.numpy()), side=1, lower=1)   # s @ L
    return torch.from_numpy(blas.dtrmm(1.0, lower, sl, side=0, lower=1, trans_a=1))  # L' @ (s @ L)


def _trace_sqrt_product(s1: torch.Tensor, s2: torch.Tensor) -> float:
    """tr((S1 S2)^(1/2)) for symmetric PSD S1, S2 (float64), via one symmetric eigenproblem."""
    try:
        factor = torch.linalg.cholesky(s1)
    except RuntimeError:                            # singular S1: symmetric square root instead
        evals, evecs = torch.linalg.eigh(s1)
        factor = evecs * evals.clamp_min(0).sqrt()
    m = _sandwich(factor, s2)
    m = (m + m.T) / 2
    return float(torch.linalg.eigvalsh(m).clamp_min(0).sqrt().sum())


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (float64)."""
    m1, m2 = (torch.as_tensor(np.asarray(m), dtype=torch.float64) for m in (mu1, mu2))
    s1, s2 = (torch.as_tensor(np.asarray(s), dtype=torch.float64) for s in (sigma1, sigma2))
    if m1.shape != m2.shape or s1.shape != s2.shape or s1.shape != (m1.shape[0], m1.shape[0]):
        raise ValueError(f"statistics shapes do not match: mu {tuple(m1.shape)}/{tuple(m2.shape)}, "
                         f"sigma {tuple(s1.shape)}/{tuple(s2.shape)}")
    diff = m1 - m2
    return float(diff @ diff + torch.trace(s1) + torch.trace(s2) - 2 * _trace_sqrt_product(s1, s2))


def fid(real: Any, fake: Any) -> float:
    """Fréchet distance between two feature sets (the FID on Inception pool3 features).

    Args:
        real: (N1, D) features of real images.
        fake: (N2, D) features of generated images.

    Returns:
        The distance (float). Biased upwards at small N; compare only at equal N.
    """
    r, f = _pair(real, fake)
    (n1, d), n2 = r.shape, f.shape[0]
    if max(n1, n2) <= d:
        # Both covariances have rank < D: tr (S1 S2)^(1/2) = nuclear norm of A B' (A = Xc / sqrt(n-1)).
        # NumPy here: these arrays are small, and per-op thread start-up would dominate in torch.
        x, y = r.numpy().astype(np.float64), f.numpy().astype(np.float64)
        mx, my = x.mean(0), y.mean(0)
        a, b = x - mx, y - my
        tr_sqrt = float(np.linalg.svd((a @ b.T) / np.sqrt((n1 - 1) * (n2 - 1)), compute_uv=False).sum())
        diff = mx - my
        return float(diff @ diff + (a * a).sum() / (n1 - 1) + (b * b).sum() / (n2 - 1) - 2 * tr_sqrt)
    mu1, s1 = feature_statistics(r)
    mu2, s2 = feature_statistics(f)
    return frechet_distance(mu1, s1, mu2, s2)


# -- KID --------------------------------------------------------------------------------------

@dataclass
class KID:
    """Kernel Inception Distance: mean and std of the unbiased MMD^2 over subsets."""

    mean: float
    std: float
    subsets: int
    subset_size: int
    seed: int
    values: list[float] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("values")
        return d


def kid_subset_size(n_real: int, n_fake: int, subset_size: int = KID_SUBSET_SIZE) -> int:
    """The subset size used: ``subset_size``, or ``min(n_real, n_fake)`` (with a warning) when smaller."""
    m = min(subset_size, n_real, n_fake)
    if m < subset_size:
        warnings.warn(f"KID: {min(n_real, n_fake)} samples < subset size {subset_size}; using subsets of {m} "
                      "(torch-fidelity and torchmetrics would refuse; values at different subset sizes are "
                      "not comparable)", SmallSampleWarning, stacklevel=3)
    return m


def kid_subsets(n_real: int, n_fake: int, *, subsets: int, subset_size: int,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(real, fake) index arrays (subsets, subset_size), drawn as torch-fidelity does."""
    rng = np.random.RandomState(seed)
    real_idx = np.empty((subsets, subset_size), dtype=np.int64)
    fake_idx = np.empty((subsets, subset_size), dtype=np.int64)
    for s in range(subsets):
        fake_idx[s] = rng.choice(n_fake, subset_size, replace=False)
        real_idx[s] = rng.choice(n_real, subset_size, replace=False)
    return real_idx, fake_idx


def membership(idx: np.ndarray, n: int) -> torch.Tensor:
    """(S, n) float64 counts of each point in each row of ``idx`` (S, m)."""
    w = torch.zeros(idx.shape[0], n, dtype=torch.float64)
    w.scatter_add_(1, torch.from_numpy(idx), torch.ones(idx.shape, dtype=torch.float64))
    return w


def mmd_from_sums(xx: torch.Tensor, yy: torch.Tensor, xy: torch.Tensor, m: int) -> np.ndarray:
    """Unbiased MMD^2 per subset from kernel sums over distinct pairs (xx, yy) and all pairs (xy)."""
    return ((xx + yy) / (m * (m - 1)) - 2 * xy / (m * m)).numpy()


def kid(real: Any, fake: Any, *, subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE,
        degree: int = 3, gamma: float | None = None, coef0: float = 1.0, seed: int = SEED,
        chunk: int = 2048) -> KID:
    """Kernel Inception Distance (see the module docstring for the convention).

    Args:
        real: (N1, D) real features.
        fake: (N2, D) generated features.
        subsets: Number of subsets.
        subset_size: Samples per subset (shrinks with a warning when N is smaller).
        degree, gamma, coef0: Polynomial kernel ``(gamma x.y + coef0) ** degree``; gamma defaults to 1/D.
        seed: Seed of the subset draws.
        chunk: Block size of the pairwise computation.
    """
    r, f = _pair(real, fake)
    if subsets < 1:
        raise ValueError(f"subsets must be >= 1, got {subsets}")
    m = kid_subset_size(r.shape[0], f.shape[0], subset_size)
    ri, fi = kid_subsets(r.shape[0], f.shape[0], subsets=subsets, subset_size=m, seed=seed)
    spec = KernelSpec(membership(ri, r.shape[0]), membership(fi, f.shape[0]), degree,
                      1.0 / r.shape[1] if gamma is None else gamma, coef0)
    res = pairwise_pass(r, f, pr_k=None, dc_k=None, kernel=spec, chunk=chunk)
    return kid_from_pass(res, m, seed)


def kid_from_pass(res: PairwiseResult, m: int, seed: int) -> KID:
    vals = mmd_from_sums(res.kid_xx, res.kid_yy, res.kid_xy, m)
    return KID(float(vals.mean()), float(vals.std()), len(vals), m, seed, vals.tolist())


# -- Inception Score --------------------------------------------------------------------------

@dataclass
class InceptionScore:
    """Inception Score: mean and std over splits."""

    mean: float
    std: float
    splits: int
    seed: int | None


def inception_score(logits: Any, *, splits: int = 10, seed: int | None = SEED) -> InceptionScore:
    """Inception Score of (N, C) classifier logits (torch-fidelity: ``logits_unbiased``).

    Args:
        logits: (N, C) logits.
        splits: Number of splits.
        seed: Shuffle with ``RandomState(seed).permutation`` first; None keeps the order.
    """
    x = _as_2d(logits, "logits").double()
    n = x.shape[0]
    if splits < 1 or n < splits:
        raise ValueError(f"inception_score needs 1 <= splits <= N; got splits={splits}, N={n}")
    if seed is not None:
        x = x[torch.from_numpy(np.random.RandomState(seed).permutation(n))]
    p, log_p = x.softmax(1), x.log_softmax(1)
    scores = []
    for i in range(splits):
        sl = slice(i * n // splits, (i + 1) * n // splits)
        q = p[sl].mean(0, keepdim=True)
        scores.append(float((p[sl] * (log_p[sl] - q.log())).sum(1).mean().exp()))
    return InceptionScore(float(np.mean(scores)), float(np.std(scores)), splits, seed)


# -- k-NN metrics -----------------------------------------------------------------------------

@dataclass
class PrecisionRecall:
    """Improved precision and recall (Kynkäänniemi et al., 2019)."""

    precision: float
    recall: float
    f1: float
    k: int


@dataclass
class DensityCoverage:
    """Density and coverage (Naeem et al., 2020)."""

    density: float
    coverage: float
    k: int


def f1_score(precision: float, recall: float) -> float:
    """``2PR / max(1e-5, P + R)`` as torch-fidelity computes its F-score."""
    return 2 * precision * recall / max(1e-5, precision + recall)


def _check_k(k: int, r: torch.Tensor, f: torch.Tensor, name: str) -> None:
    if k < 1:
        raise ValueError(f"{name} must be >= 1, got {k}")
    if min(r.shape[0], f.shape[0]) <= k:
        raise ValueError(f"{name}={k} needs more than {k} real and fake samples, "
                         f"got {r.shape[0]} and {f.shape[0]}")


def precision_recall_from_pass(res: PairwiseResult, k: int) -> PrecisionRecall:
    """Precision and recall from a pairwise pass run with ``pr_k=k`` (means of its per-point flags)."""
    p, rc = float(res.precision.double().mean()), float(res.recall.double().mean())
    return PrecisionRecall(p, rc, f1_score(p, rc), k)


def density_coverage_from_pass(res: PairwiseResult, k: int) -> DensityCoverage:
    """Density and coverage from a pairwise pass run with ``dc_k=k`` (density counts divided by k)."""
    return DensityCoverage(float(res.density.double().mean()) / k, float(res.coverage.double().mean()), k)


def kid_kernel(w_real: torch.Tensor, w_fake: torch.Tensor, dim: int) -> KernelSpec:
    """KID's polynomial kernel ``(x.y / dim + 1)^3`` over the subsets marked in the membership matrices."""
    return KernelSpec(w_real, w_fake, 3, 1.0 / dim, 1.0)


def precision_recall(real: Any, fake: Any, *, k: int = 3, chunk: int = 2048) -> PrecisionRecall:
    """Precision (fakes inside the real manifold) and recall (reals inside the fake manifold)."""
    r, f = _pair(real, fake)
    _check_k(k, r, f, "k")
    return precision_recall_from_pass(pairwise_pass(r, f, pr_k=k, dc_k=None, kernel=None, chunk=chunk), k)


def density_coverage(real: Any, fake: Any, *, k: int = 5, chunk: int = 2048) -> DensityCoverage:
    """Density (can exceed 1) and coverage of the real k-NN balls by the fakes."""
    r, f = _pair(real, fake)
    _check_k(k, r, f, "k")
    return density_coverage_from_pass(pairwise_pass(r, f, pr_k=None, dc_k=k, kernel=None, chunk=chunk), k)


# -- everything in one pass -------------------------------------------------------------------

@dataclass
class FidelityScores:
    """FID, KID, precision/recall and density/coverage of one comparison (None when not computed)."""

    fid: float | None = None
    kid: KID | None = None
    precision_recall: PrecisionRecall | None = None
    density_coverage: DensityCoverage | None = None


def fidelity_scores(real: Any, fake: Any, *, compute_fid: bool = True, compute_kid: bool = True,
                    pr_k: int | None = 3, dc_k: int | None = 5, kid_subsets_n: int = KID_SUBSETS,
                    kid_subset_size_max: int = KID_SUBSET_SIZE, seed: int = SEED, chunk: int = 2048,
                    gram_dtype: str = "auto") -> tuple[FidelityScores, PairwiseResult]:
    """All feature metrics with one shared pairwise pass (same values as the separate functions).

    Returns:
        The scores and the per-point pass result (flags, counts, radii) for bootstrapping.
    """
    r, f = _pair(real, fake)
    for k, name in ((pr_k, "pr_k"), (dc_k, "dc_k")):
        if k is not None:
            _check_k(k, r, f, name)
    spec, m = None, 0
    if compute_kid:
        m = kid_subset_size(r.shape[0], f.shape[0], kid_subset_size_max)
        ri, fi = kid_subsets(r.shape[0], f.shape[0], subsets=kid_subsets_n, subset_size=m, seed=seed)
        spec = kid_kernel(membership(ri, r.shape[0]), membership(fi, f.shape[0]), r.shape[1])
    res = pairwise_pass(r, f, pr_k=pr_k, dc_k=dc_k, kernel=spec, chunk=chunk, gram_dtype=gram_dtype)
    out = FidelityScores(fid=fid(r, f) if compute_fid else None)
    if compute_kid:
        out.kid = kid_from_pass(res, m, seed)
    if pr_k:
        out.precision_recall = precision_recall_from_pass(res, pr_k)
    if dc_k:
        out.density_coverage = density_coverage_from_pass(res, dc_k)
    return out, res
