"""One chunked pass over all pairs of feature vectors, shared by KID and the k-NN metrics.

KID needs polynomial-kernel sums over pairs; precision/recall and density/coverage need
pairwise Euclidean distances. Both come from the same Gram matrices, so this module
computes each Gram block once and derives everything from it:

* features are centred on the real mean first (distances do not change; the values get
  smaller, so float32 blocks lose less); each block is one GEMM on augmented features — squared
  distances ``[xc | |xc|^2 | 1] . [-2 yc | 1 | |yc|^2]`` (as torch.cdist does), or, when no
  distances are needed, the kernel argument ``gamma x.y + coef0`` directly — and the kernel is
  derived from the distance block in place (``x.y = (|xc|^2 + |yc|^2 - d2) / 2 + xc.m + yc.m + m.m``);
* real-real and fake-fake blocks are computed for the upper triangle only and used for both
  their rows and their columns;
* blocks are ``chunk x chunk``, so memory stays bounded (no N x N matrix is ever stored);
* KID subset sums are matrix products with subset-membership (or bootstrap count) matrices:
  for subset weights ``c``, ``sum_{a != b} k(z_a, z_b) = c'Kc - sum_i c_i k(z_i, z_i)``; the
  kernel is evaluated minus a constant (see :class:`_KernelSums`).

Everything returned is per point (radii, flags, counts) or per subset (kernel sums), so
the callers can reduce and bootstrap without a second pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch


@dataclass
class KernelSpec:
    """A polynomial kernel ``k(x, y) = (gamma * x.y + coef0) ** degree`` and subset weights.

    Attributes:
        real_weights: (S, n_real) float64 counts of each real point in each subset.
        fake_weights: (S, n_fake) float64 counts of each fake point in each subset.
    """

    real_weights: torch.Tensor
    fake_weights: torch.Tensor
    degree: int = 3
    gamma: float = 1.0
    coef0: float = 1.0


@dataclass
class PairwiseResult:
    """Per-point and per-subset quantities of one pass.

    Attributes:
        real_knn: (n_real, K) squared distances to the 1st..K-th nearest other real point.
        fake_knn: (n_fake, K) squared distances to the 1st..K-th nearest other fake point.
        precision: (n_fake,) bool, fake inside some real k-NN ball (k = pr_k, ``<=``).
        recall: (n_real,) bool, real inside some fake k-NN ball (k = pr_k, ``<=``).
        density: (n_fake,) int, number of real k-NN balls (k = dc_k, ``<``) containing the fake.
        coverage: (n_real,) bool, some fake strictly inside the real point's k-NN ball (k = dc_k).
        kid_xx / kid_yy / kid_xy: (S,) sums of ``k - kid_shift`` over pairs of distinct subset
            members (real-real, fake-fake) and over all real-fake pairs; the unbiased MMD^2 of
            these equals that of the unshifted sums.
        kid_shift: The constant subtracted from every kernel value.
    """

    real_knn: torch.Tensor | None = None
    fake_knn: torch.Tensor | None = None
    precision: torch.Tensor | None = None
    recall: torch.Tensor | None = None
    density: torch.Tensor | None = None
    coverage: torch.Tensor | None = None
    kid_xx: torch.Tensor | None = None
    kid_yy: torch.Tensor | None = None
    kid_xy: torch.Tensor | None = None
    kid_shift: float = 0.0
    gram_dtype: str = "float32"
    notes: list[str] = field(default_factory=list)


class _Centred:
    """Features centred on ``center``, in the Gram dtype, plus float64 norms and offsets."""

    def __init__(self, x: torch.Tensor, center: torch.Tensor, gram_dtype: torch.dtype):
        xc = x.double() - center
        self.n = x.shape[0]
        self.dtype = gram_dtype
        self.g = xc.to(gram_dtype)
        self.sq = (xc * xc).sum(1)          # |xc|^2, float64
        self.off = xc @ center              # xc . m, float64
        self._dist: tuple[torch.Tensor, torch.Tensor] | None = None

    def dist_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(left, right) with ``left[i] . right[j] = |xc_i - xc_j|^2``: [xc | |xc|^2 | 1], [-2 xc | 1 | |xc|^2].

        One GEMM then yields a block of squared distances directly (as torch.cdist does).
        """
        if self._dist is None:
            one, sq = torch.ones(self.n, 1, dtype=self.dtype), self.sq[:, None].to(self.dtype)
            self._dist = (torch.cat([self.g, sq, one], 1), torch.cat([-2 * self.g, one, sq], 1))
        return self._dist


def _sq_dist(a: _Centred, b: _Centred, ia: slice, ib: slice) -> torch.Tensor:
    """Squared distances of a block, (|ia|, |ib|) in the Gram dtype, from one GEMM."""
    return (a.dist_factors()[0][ia] @ b.dist_factors()[1][ib].T).clamp_(min=0)


def _blocks(n: int, chunk: int) -> list[slice]:
    return [slice(i, min(i + chunk, n)) for i in range(0, n, chunk)]


def _merge_topk(best: torch.Tensor, cand: torch.Tensor, k: int) -> torch.Tensor:
    return torch.topk(torch.cat([best, cand], dim=1), k, dim=1, largest=False).values


class _KernelSums:
    """Accumulates ``c' (K - k0) c`` over blocks for every subset weight vector ``c``.

    The kernel is evaluated in the Gram dtype, minus the constant ``k0 = k(m, m)`` (m: the
    centre), which leaves the unbiased MMD^2 unchanged. With ``p0 = gamma m.m + coef0`` and
    ``delta = gamma (x.y - m.m)`` (small: the features are centred), ``k - k0 = (p0 + delta)^deg
    - p0^deg`` is evaluated from ``delta`` by Horner's rule, so float32 rounding is relative to
    ``delta``, not to ``p0``. Per-block sums are accumulated in float64.
    """

    def __init__(self, spec: KernelSpec, center: torch.Tensor, dtype: torch.dtype):
        self.spec = spec
        self.dtype = dtype
        self.cc = float(center @ center)
        p0 = self.cc * spec.gamma + spec.coef0
        self.k0 = float(p0**spec.degree)
        # (p0 + d)^n - p0^n = d * (c_1 + d * (c_2 + ... + d * c_n)), c_j = binom(n, j) p0^(n - j)
        self._horner = [math.comb(spec.degree, j) * p0 ** (spec.degree - j) for j in range(1, spec.degree + 1)]
        self._aug: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def _shifted_power(self, delta: torch.Tensor) -> torch.Tensor:
        """``(p0 + delta)^deg - p0^deg`` (a new tensor; ``delta`` unchanged)."""
        coeffs = self._horner
        out = delta * coeffs[-1]
        for c in reversed(coeffs[:-1]):
            out.add_(c).mul_(delta)
        return out

    def kernel_from_d2(self, d2: torch.Tensor, a: _Centred, b: _Centred, ia: slice, ib: slice) -> torch.Tensor:
        """k(x, y) - k0 of a block from its squared distances (``d2`` is overwritten with ``delta``).

        ``delta = gamma (x.y - m.m) = -gamma/2 d2 + gamma (|xc|^2/2 + xc.m) + gamma (|yc|^2/2 + yc.m)``.
        """
        g = self.spec.gamma
        u = (g * (a.sq[ia] / 2 + a.off[ia])).to(self.dtype)
        v = (g * (b.sq[ib] / 2 + b.off[ib])).to(self.dtype)
        delta = d2.mul_(-g / 2)
        delta.add_(u[:, None])
        delta.add_(v[None, :])
        return self._shifted_power(delta)

    def augmented(self, a: _Centred) -> tuple[torch.Tensor, torch.Tensor]:
        """(left, right) with ``left[i] . right[j] = delta_ij = gamma (x_i . y_j - m.m)`` in one GEMM.

        left = [gamma xc | gamma xc.m | 1], right = [xc | 1 | gamma xc.m].
        """
        key = id(a)
        if key not in self._aug:
            g, one = self.spec.gamma, torch.ones(a.n, 1, dtype=torch.float64)
            off = a.off[:, None]
            left = torch.cat([g * a.g.double(), g * off, one], 1)
            right = torch.cat([a.g.double(), one, g * off], 1)
            self._aug[key] = (left.to(self.dtype), right.to(self.dtype))
        return self._aug[key]

    def kernel_direct(self, a: _Centred, b: _Centred, ia: slice, ib: slice) -> torch.Tensor:
        """k(x, y) - k0 of a block straight from augmented features (when no distances are needed)."""
        return self._shifted_power(self.augmented(a)[0][ia] @ self.augmented(b)[1][ib].T)

    def quad(self, k: torch.Tensor, wa: torch.Tensor, wb: torch.Tensor) -> torch.Tensor:
        """sum_{i,j} wa[s, i] K[i, j] wb[s, j] for every subset s -> (S,) float64 (wb in the block's dtype)."""
        return ((k @ wb.T).double() * wa.T).sum(0)

    def self_pairs(self, a: _Centred, w: torch.Tensor) -> torch.Tensor:
        """sum_i c_i (c_i - 1) (k(z_i, z_i) - k0): pairs of distinct copies of one point (bootstrap counts)."""
        norms = a.sq + 2 * a.off + self.cc
        kdiag = (norms * self.spec.gamma + self.spec.coef0) ** self.spec.degree - self.k0
        return (w * (w - 1)) @ kdiag


def _within(a: _Centred, knn: int, kern: _KernelSums | None, w: torch.Tensor | None,
            chunk: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """k-NN radii and kernel sums inside one set, from upper-triangular blocks."""
    best = torch.full((a.n, knn), float("inf"), dtype=a.g.dtype) if knn else None
    ksum = torch.zeros(w.shape[0], dtype=torch.float64) if w is not None else None
    w_g = w.to(a.g.dtype) if w is not None else None
    blocks = _blocks(a.n, chunk)
    for bi, ia in enumerate(blocks):
        for ib in blocks[bi:]:
            diag = ia == ib
            k = None
            if best is not None:
                d2 = _sq_dist(a, a, ia, ib)                    # (|ia|, |ib|)
                if diag:
                    d2.fill_diagonal_(0.0)                     # self-distance exactly 0
                kk = min(knn, d2.shape[1])
                best[ia] = _merge_topk(best[ia], torch.topk(d2, kk, dim=1, largest=False).values, knn)
                if not diag:  # the block's columns are rows of the mirrored block
                    kk = min(knn, d2.shape[0])
                    cols = torch.topk(d2.T.contiguous(), kk, dim=1, largest=False).values
                    best[ib] = _merge_topk(best[ib], cols, knn)
                if kern is not None:
                    k = kern.kernel_from_d2(d2, a, a, ia, ib)
            elif kern is not None:
                k = kern.kernel_direct(a, a, ia, ib)
            if k is not None:
                if diag:
                    k.fill_diagonal_(0.0)                      # pairs of distinct points only
                    ksum += kern.quad(k, w[:, ia], w_g[:, ib])
                else:
                    ksum += 2 * kern.quad(k, w[:, ia], w_g[:, ib])
    if kern is not None and w is not None:
        ksum += kern.self_pairs(a, w)
    return best, ksum


def pairwise_pass(real: torch.Tensor, fake: torch.Tensor, *, pr_k: int | None = 3, dc_k: int | None = None,
                  kernel: KernelSpec | None = None, chunk: int = 2048, gram_dtype: str = "auto") -> PairwiseResult:
    """Compute the k-NN and kernel quantities of :class:`PairwiseResult` in one chunked pass.

    Args:
        real: (n_real, D) features.
        fake: (n_fake, D) features.
        pr_k: k of precision/recall (Kynkäänniemi et al. 2019), or None to skip.
        dc_k: k of density/coverage (Naeem et al. 2020), or None to skip.
        kernel: KID kernel and subset weights, or None to skip KID.
        chunk: Block side; peak memory is about ``4 * chunk**2`` Gram-dtype values (~64 MiB at 2048, float32).
        gram_dtype: ``"float32"``, ``"float64"`` or ``"auto"`` (float64 when the pass is small:
            ``(n_real + n_fake)**2 * D <= 1e11``). Gram blocks, distances and kernel blocks use it;
            sums are float64. In float32, KID carries ~1e-6 relative rounding (as torch-fidelity's
            float32 computation does) and k-NN decisions can flip only at exact ties.
    """
    n1, n2, d = real.shape[0], fake.shape[0], real.shape[1]
    if gram_dtype == "auto":
        gram_dtype = "float64" if (n1 + n2) ** 2 * d <= 1e11 else "float32"
    gdt = {"float32": torch.float32, "float64": torch.float64}[gram_dtype]
    center = real.double().mean(0)
    xr, xf = _Centred(real, center, gdt), _Centred(fake, center, gdt)
    out = PairwiseResult(gram_dtype=gram_dtype)
    knn_real = max(pr_k or 0, dc_k or 0)
    knn_fake = pr_k or 0
    kern = _KernelSums(kernel, center, gdt) if kernel is not None else None
    wr = kernel.real_weights.double() if kernel is not None else None
    wf = kernel.fake_weights.double() if kernel is not None else None

    # Within-set passes; column 0 of the k-NN table is the point itself (distance 0).
    real_knn, out.kid_xx = _within(xr, knn_real + 1 if knn_real else 0, kern, wr, chunk)
    fake_knn, out.kid_yy = _within(xf, knn_fake + 1 if knn_fake else 0, kern, wf, chunk)
    out.real_knn = real_knn[:, 1:] if real_knn is not None else None
    out.fake_knn = fake_knn[:, 1:] if fake_knn is not None else None
    if not (pr_k or dc_k or kern):
        return out

    # Cross pass: fake rows x real columns.
    r_pr = out.real_knn[:, pr_k - 1] if pr_k else None
    f_pr = out.fake_knn[:, pr_k - 1] if pr_k else None
    r_dc = out.real_knn[:, dc_k - 1] if dc_k else None
    precision = torch.zeros(n2, dtype=torch.bool)
    recall = torch.zeros(n1, dtype=torch.bool)
    density = torch.zeros(n2, dtype=torch.long)
    coverage = torch.zeros(n1, dtype=torch.bool)
    kxy = torch.zeros(wr.shape[0], dtype=torch.float64) if kern is not None else None
    wr_g = wr.to(gdt) if kern is not None else None
    for i_f in _blocks(n2, chunk):
        for i_r in _blocks(n1, chunk):
            if not (pr_k or dc_k):                            # KID only: one augmented GEMM per block
                kxy += kern.quad(kern.kernel_direct(xf, xr, i_f, i_r), wf[:, i_f], wr_g[:, i_r])
                continue
            d2 = _sq_dist(xf, xr, i_f, i_r)                  # (|i_f|, |i_r|)
            if pr_k:
                precision[i_f] |= (d2 <= r_pr[None, i_r]).any(1)
                recall[i_r] |= (d2 <= f_pr[i_f, None]).any(0)
            if dc_k:
                inside = d2 < r_dc[None, i_r]
                density[i_f] += inside.sum(1)
                coverage[i_r] |= inside.any(0)
            if kern is not None:
                kxy += kern.quad(kern.kernel_from_d2(d2, xf, xr, i_f, i_r), wf[:, i_f], wr_g[:, i_r])
    if pr_k:
        out.precision, out.recall = precision, recall
    if dc_k:
        out.density, out.coverage = density, coverage
    out.kid_xy = kxy
    out.kid_shift = kern.k0 if kern is not None else 0.0
    return out
