"""Bootstrap confidence intervals for the fidelity metrics.

Each replicate resamples the real and the fake set with replacement (seeded, NumPy
``default_rng``); the interval is the percentile interval of the replicates — for FID and KID
re-centred on the estimate, because duplicated images bias their replicates upwards (a
resampled set of n images has only about 0.63 n distinct ones).

* **FID** is recomputed on every replicate (the nuclear-norm path when n <= D is cheap; in
  high dimension with many samples each replicate costs one eigendecomposition, so only as many
  replicates as fit :data:`FID_BOOTSTRAP_BUDGET` are used, at least 20; the count is recorded).
* **KID**: each replicate draws its own subsets from the resampled sets; all replicates ride
  along in the single pairwise pass as subset *count* matrices (a copy of a point paired with
  another copy counts as a pair of distinct samples). Skipped, with a reason, when that would
  need more than :data:`KID_BOOTSTRAP_BUDGET` multiply-adds or 256 MiB of count matrices.
* **Precision, recall, F1, density, coverage** resample the per-point indicators with the
  k-NN balls held fixed — they include the sampling variability of the evaluated points but
  not that of the balls (resampling the balls would put duplicates at distance 0 and shrink
  them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from synthmed.evaluate._pairwise import PairwiseResult
from synthmed.evaluate.fidelity import f1_score, fid, membership, mmd_from_sums

KID_BOOTSTRAP_BUDGET = 2e11
FID_BOOTSTRAP_BUDGET = 3e12
_MAX_COUNT_BYTES = 256 * 2**20


@dataclass
class BootstrapPlan:
    """Resampled indices of every replicate, and the KID subsets drawn from them.

    Attributes:
        real_idx / fake_idx: (B, n_real) / (B, n_fake) resampled row indices.
        kid_real / kid_fake: (B * S, n) subset count matrices, or None when KID is not bootstrapped.
        kid_skipped: Why KID has no interval, if so.
    """

    real_idx: np.ndarray
    fake_idx: np.ndarray
    kid_real: torch.Tensor | None = None
    kid_fake: torch.Tensor | None = None
    kid_skipped: str | None = None


def plan_bootstrap(n_real: int, n_fake: int, replicates: int, seed: int, *, kid_subsets: int = 0,
                   kid_subset_size: int = 0) -> BootstrapPlan:
    """Draw the replicates (and their KID subsets when ``kid_subsets`` > 0 and affordable)."""
    rng = np.random.default_rng(seed)
    real_idx = rng.integers(0, n_real, size=(replicates, n_real))
    fake_idx = rng.integers(0, n_fake, size=(replicates, n_fake))
    plan = BootstrapPlan(real_idx, fake_idx)
    if not kid_subsets or not replicates:
        return plan
    rows = replicates * kid_subsets
    cost = (n_real + n_fake) ** 2 * rows
    mem = rows * max(n_real, n_fake) * 8
    if cost > KID_BOOTSTRAP_BUDGET or mem > _MAX_COUNT_BYTES:
        plan.kid_skipped = (f"KID interval skipped: {replicates} replicates x {kid_subsets} subsets on "
                            f"{n_real}+{n_fake} samples would cost ~{cost:.1e} kernel products (budget "
                            f"{KID_BOOTSTRAP_BUDGET:.0e}); use fewer --bootstrap replicates or --kid-subsets")
        return plan
    m = kid_subset_size
    sub_r = np.stack([ri[rng.permutation(n_real)[:m]] for ri in real_idx for _ in range(kid_subsets)])
    sub_f = np.stack([fi[rng.permutation(n_fake)[:m]] for fi in fake_idx for _ in range(kid_subsets)])
    plan.kid_real, plan.kid_fake = membership(sub_r, n_real), membership(sub_f, n_fake)
    return plan


def fid_replicate_count(n_real: int, n_fake: int, dim: int, replicates: int) -> int:
    """How many FID replicates fit :data:`FID_BOOTSTRAP_BUDGET` (at least 20, at most ``replicates``).

    With n <= D a replicate is a small SVD; in high dimension with many samples it costs two
    covariances and a D x D eigenproblem (~1e11 operations at n = 10,000, D = 2048).
    """
    if max(n_real, n_fake) <= dim:
        cost = n_real * n_fake * dim + min(n_real, n_fake) ** 3
    else:
        cost = (n_real + n_fake) * dim**2 + 10 * dim**3
    return int(min(replicates, max(20, FID_BOOTSTRAP_BUDGET // cost)))


def fid_replicates(real: torch.Tensor, fake: torch.Tensor, plan: BootstrapPlan, progress: bool = False,
                   limit: int | None = None) -> list[float]:
    """FID of every replicate (of the first ``limit`` ones)."""
    from tqdm.auto import tqdm

    out = []
    pairs = list(zip(plan.real_idx, plan.fake_idx, strict=True))[:limit]
    for ri, fi in tqdm(pairs, disable=not progress, desc="bootstrap FID"):
        out.append(fid(real[torch.from_numpy(ri)], fake[torch.from_numpy(fi)]))
    return out


def kid_replicates(res: PairwiseResult, n_main_subsets: int, replicates: int, kid_subsets: int,
                   m: int) -> list[float]:
    """Mean KID of every replicate, from the replicate rows appended after the main subsets."""
    vals = mmd_from_sums(res.kid_xx[n_main_subsets:], res.kid_yy[n_main_subsets:], res.kid_xy[n_main_subsets:], m)
    return vals.reshape(replicates, kid_subsets).mean(1).tolist()


def knn_replicates(res: PairwiseResult, plan: BootstrapPlan, pr_k: int | None,
                   dc_k: int | None) -> dict[str, list[float]]:
    """Precision / recall / F1 / density / coverage of every replicate (balls held fixed)."""
    out: dict[str, list[float]] = {}
    if pr_k:
        p = res.precision.numpy().astype(np.float64)[plan.fake_idx].mean(1)
        r = res.recall.numpy().astype(np.float64)[plan.real_idx].mean(1)
        out.update(precision=p.tolist(), recall=r.tolist(), f1=[f1_score(a, b) for a, b in zip(p, r, strict=True)])
    if dc_k:
        out["density"] = (res.density.numpy().astype(np.float64)[plan.fake_idx].mean(1) / dc_k).tolist()
        out["coverage"] = res.coverage.numpy().astype(np.float64)[plan.real_idx].mean(1).tolist()
    return out
