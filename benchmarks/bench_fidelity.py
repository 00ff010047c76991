"""Speed and parity of synthmed's FID + KID + precision/recall against torch-fidelity and torchmetrics.

Usage: python benchmarks/bench_fidelity.py [--n 10000] [--dim 2048] [--seed 0] [--repeat 2]

Last, it prints the floor: the least time FID + KID + P/R can take on this machine with the
same values (the flops they cannot skip at the measured matrix-product peak), and the best
speed-up over each reference that this floor allows.

All implementations get the same (n, dim) float32 features in the same process. Features are
ReLU'd correlated Gaussians (non-negative with a mean offset, like Inception pool3 features);
the "fake" set is shifted slightly. Reported per metric: seconds and the value of each
implementation, the relative difference from synthmed, and the speed ratios.

* torch-fidelity 0.4 (``pip install --no-deps torch-fidelity==0.4.0``; skipped with a message
  if absent): ``fid_features_to_statistics`` + ``fid_statistics_to_metric``,
  ``kid_features_to_metric(fake, real)``, ``prc_features_to_metric(fake, real)``. It is imported
  through ``synthmed.testing.reference.import_torch_fidelity`` (its package imports torchvision,
  which synthmed does not depend on; the metric functions never call it).
* torchmetrics (FID and KID only; it has no precision/recall): float64 feature sums as in
  ``FrechetInceptionDistance.update`` + ``_compute_fid``; KID as ``KernelInceptionDistance.compute``
  with ``poly_mmd`` on each subset — on torch-fidelity's subsets (same seed), because
  torchmetrics draws unseeded ``randperm`` subsets and would not be comparable value for value.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from synthmed.evaluate.fidelity import fid, fidelity_scores, kid_subsets
from synthmed.testing.reference import NO_DEPS_INSTALL, import_torch_fidelity


def make_features(n: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(dim, dim, generator=g) / dim ** 0.5
    real = torch.relu(torch.randn(n, dim, generator=g) @ mix + 0.3)
    fake = torch.relu(torch.randn(n, dim, generator=g) @ mix * 1.01 + 0.305)
    return real.float().contiguous(), fake.float().contiguous()


def _import_torch_fidelity():
    """torch-fidelity's metric modules, or None (see :mod:`synthmed.testing.reference`)."""
    if import_torch_fidelity() is None:
        print(f"torch-fidelity not installed; skipping it. {NO_DEPS_INSTALL}")
        return None
    from torch_fidelity import metric_fid, metric_kid, metric_prc

    return metric_fid, metric_kid, metric_prc


def _import_torchmetrics():
    try:
        from torchmetrics.image.fid import _compute_fid
        from torchmetrics.image.kid import poly_mmd
    except ImportError as err:
        print(f"torchmetrics not importable ({err}); skipping it")
        return None
    return _compute_fid, poly_mmd


_TF = _import_torch_fidelity()
_TM = _import_torchmetrics()


Timing = tuple[float, float]  # (wall seconds, CPU seconds of this process, all threads)
NO_TIME: Timing = (0.0, 0.0)


def timed(fn):
    """Run ``fn``; return its output and (wall, process CPU) seconds. CPU time is what a job costs on a
    shared machine whatever the other jobs do; wall time is what a user waits for on an idle one."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, (time.perf_counter() - t, time.process_time() - c)


def run_synthmed(real: torch.Tensor, fake: torch.Tensor, m: int) -> dict[str, tuple[float, Timing]]:
    v_fid, t_fid = timed(lambda: fid(real, fake))
    (scores, _), t_pass = timed(lambda: fidelity_scores(real, fake, compute_fid=False, pr_k=3, dc_k=None,
                                                          kid_subset_size_max=m))
    (kid_only, _), t_kid = timed(lambda: fidelity_scores(real, fake, compute_fid=False, pr_k=None, dc_k=None,
                                                             kid_subset_size_max=m))
    pr = scores.precision_recall
    return {"fid": (v_fid, t_fid), "kid": (scores.kid.mean, t_kid), "kid_std": (scores.kid.std, NO_TIME),
            "precision": (pr.precision, t_pass), "recall": (pr.recall, NO_TIME),
            "kid+pr pass": (float("nan"), t_pass)}


def run_torch_fidelity(real: torch.Tensor, fake: torch.Tensor, m: int) -> dict[str, tuple[float, Timing]] | None:
    if _TF is None:
        return None
    metric_fid, metric_kid, metric_prc = _TF
    kw = dict(kid_subsets=100, kid_subset_size=m, kid_kernel="poly", kid_kernel_poly_degree=3,
              kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1, rng_seed=2020, verbose=False,
              prc_neighborhood=3, prc_batch_size=10000, save_cpu_ram=False)

    def _fid():
        s1 = metric_fid.fid_features_to_statistics(fake)
        s2 = metric_fid.fid_features_to_statistics(real)
        return metric_fid.fid_statistics_to_metric(s1, s2, False)[metric_fid.KEY_METRIC_FID]

    v_fid, t_fid = timed(_fid)
    k, t_kid = timed(lambda: metric_kid.kid_features_to_metric(fake, real, **kw))
    p, t_prc = timed(lambda: metric_prc.prc_features_to_metric(fake, real, **kw))
    return {"fid": (v_fid, t_fid), "kid": (k[metric_kid.KEY_METRIC_KID_MEAN], t_kid),
            "kid_std": (k[metric_kid.KEY_METRIC_KID_STD], NO_TIME),
            "precision": (p[metric_prc.KEY_METRIC_PRECISION], t_prc),
            "recall": (p[metric_prc.KEY_METRIC_RECALL], NO_TIME)}


def run_torchmetrics(real: torch.Tensor, fake: torch.Tensor, m: int) -> dict[str, tuple[float, Timing]] | None:
    if _TM is None:
        return None
    _compute_fid, poly_mmd = _TM

    def _fid():
        stats = []
        for x in (real, fake):
            x64 = x.double()
            n = x64.shape[0]
            mean = (x64.sum(0) / n).unsqueeze(0)
            cov = (x64.t().mm(x64) - n * mean.t().mm(mean)) / (n - 1)
            stats.append((mean.squeeze(0), cov))
        return float(_compute_fid(stats[0][0], stats[0][1], stats[1][0], stats[1][1]))

    ri, fi = kid_subsets(real.shape[0], fake.shape[0], subsets=100, subset_size=m, seed=2020)

    def _kid():
        scores = torch.stack([poly_mmd(real[torch.from_numpy(r)], fake[torch.from_numpy(f)])
                              for r, f in zip(ri, fi, strict=True)])
        return float(scores.mean()), float(scores.std(unbiased=False))

    v_fid, t_fid = timed(_fid)
    (k_mean, k_std), t_kid = timed(_kid)
    return {"fid": (v_fid, t_fid), "kid": (k_mean, t_kid), "kid_std": (k_std, NO_TIME)}


def kid_precision_check(real: torch.Tensor, fake: torch.Tensor, m: int, n_check: int = 10) -> None:
    """Per-subset MMD^2 of the first subsets against an explicit float64 computation on the same subsets."""
    ri, fi = kid_subsets(real.shape[0], fake.shape[0], subsets=100, subset_size=m, seed=2020)
    (ours, _) = fidelity_scores(real, fake, compute_fid=False, pr_k=None, dc_k=None, kid_subset_size_max=m)
    d = real.shape[1]
    exact, tf_vals, tm_vals = [], [], []
    for s in range(n_check):
        x, y = fake[torch.from_numpy(fi[s])], real[torch.from_numpy(ri[s])]
        x64, y64 = x.double(), y.double()
        kxx, kyy, kxy = ((x64 @ x64.T) / d + 1) ** 3, ((y64 @ y64.T) / d + 1) ** 3, ((x64 @ y64.T) / d + 1) ** 3
        exact.append(float((kxx.sum() - kxx.trace() + kyy.sum() - kyy.trace()) / (m * (m - 1)) - 2 * kxy.sum() / m**2))
        if _TF is not None:
            tf_vals.append(float(_TF[1].kernel_mmd(x.numpy(), y.numpy(), kid_kernel="poly", kid_kernel_poly_degree=3,
                                                   kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1)))
        if _TM is not None:
            tm_vals.append(float(_TM[1](y, x)))
    exact_a = np.asarray(exact)
    scale = np.abs(exact_a).mean()
    print(f"\nKID precision, first {n_check} subsets vs explicit float64 (max |error| / mean |MMD^2|):")
    for name, vals in (("synthmed", ours.kid.values[:n_check]), ("torch-fidelity", tf_vals), ("torchmetrics", tm_vals)):
        if vals:
            print(f"  {name:15s} {np.abs(np.asarray(vals) - exact_a).max() / scale:.1e}")


def gemm_gflops(dtype: torch.dtype, side: int = 2048, repeat: int = 5) -> float:
    """This machine's matrix-product speed (GFLOP/s) at the benchmark's thread count."""
    a = torch.randn(side, side, dtype=dtype)
    b = torch.randn(side, side + 2, dtype=dtype)
    a @ b
    t = time.perf_counter()
    for _ in range(repeat):
        a @ b
    return 2 * side * side * (side + 2) * repeat / (time.perf_counter() - t) / 1e9


def print_floor(n: int, dim: int, m: int, subsets: int, ours_s: float, refs: dict[str, float]) -> None:
    """The least time FID + KID + P/R can take here with identical values: the flops they cannot skip
    at this CPU's measured GEMM peak (see docs/evaluation-fidelity.md, Performance)."""
    f32, f64 = gemm_gflops(torch.float32), gemm_gflops(torch.float64)
    kid_pairs = subsets * (m * (m - 1) + m * m)         # what KID's subsets sum (within pairs once)
    pass_pairs = max(kid_pairs, 2 * n * n)              # P/R: all cross pairs + both within-set triangles
    gram_s = 2 * dim * pass_pairs / (f32 * 1e9)
    sym = torch.rand(dim, dim, dtype=torch.float64)
    sym = sym + sym.T
    t = time.perf_counter()
    torch.linalg.eigvalsh(sym)                          # the one symmetric eigenproblem FID needs
    eig_s = time.perf_counter() - t
    cov_s = 2 * n * dim * dim / (f64 * 1e9)
    tri_s = (dim**3 / 3 + 2 * dim**3) / (f64 * 1e9)     # Cholesky + two triangular products
    floor = gram_s + cov_s + eig_s + tri_s
    print(f"\nfloor (GEMM peak here: {f32:.0f} GFLOP/s float32, {f64:.0f} GFLOP/s float64): pairwise pass "
          f"{gram_s:.1f} s + covariances {cov_s:.1f} s + eigvalsh {eig_s:.1f} s + triangular {tri_s:.2f} s = "
          f"{floor:.1f} s; ours {ours_s:.1f} s ({floor / ours_s:.0%} of ideal)")
    for name, ref_s in refs.items():
        print(f"  best possible speed-up vs {name} ({ref_s:.1f} s): {ref_s / floor:.2f}x")


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kid-subset-size", type=int, default=1000, help="(smaller only for a quick smoke run)")
    ap.add_argument("--repeat", type=int, default=2, help="interleaved rounds; the fastest time of each is reported")
    args = ap.parse_args()
    real, fake = make_features(args.n, args.dim, args.seed)
    print(f"features: {args.n} real vs {args.n} fake, dim {args.dim}; torch threads {torch.get_num_threads()}")
    results: dict[str, dict[str, tuple[float, Timing]]] = {}
    for rep in range(args.repeat):  # interleaved rounds; the minimum time of each step is kept (shared CPUs)
        for name, fn in (("synthmed", run_synthmed), ("torchmetrics", run_torchmetrics),
                         ("torch-fidelity", run_torch_fidelity)):
            r = fn(real, fake, args.kid_subset_size)
            if r is None:
                continue
            print(f"round {rep + 1} {name}: " + ", ".join(f"{k} {v:.8g} ({t[0]:.1f} s wall, {t[1]:.1f} s cpu)"
                                                          for k, (v, t) in r.items() if t != NO_TIME), flush=True)
            prev = results.get(name, r)
            results[name] = {k: (v, (min(t[0], prev[k][1][0]), min(t[1], prev[k][1][1])))
                             for k, (v, t) in r.items()}
    ours = results["synthmed"]
    print(f"\n{'metric':10s} " + " ".join(f"{n:>32s}" for n in results))
    for metric in ("fid", "kid", "kid_std", "precision", "recall"):
        cells = []
        for name, res in results.items():
            if metric not in res:
                cells.append(f"{'-':>32s}")
                continue
            v, t = res[metric]
            diff = "" if name == "synthmed" else f" (rel {rel(v, ours[metric][0]):.1e})"
            cells.append((f"{v:.8g}{diff}" + (f" {t[0]:5.1f}s" if t != NO_TIME else "")).rjust(32))
        print(f"{metric:10s} " + " ".join(cells))
    kid_precision_check(real, fake, args.kid_subset_size)

    def total(res: dict[str, tuple[float, Timing]], keys: tuple[str, ...], i: int) -> float:
        return sum(res[k][1][i] for k in keys)

    ours_all, ours_fk = ("fid", "kid+pr pass"), ("fid", "kid")
    print(f"\nsynthmed: FID {ours['fid'][1][0]:.1f} s, KID alone {ours['kid'][1][0]:.1f} s, KID + precision/recall "
          f"in one pass {ours['kid+pr pass'][1][0]:.1f} s (wall; fastest of {args.repeat} rounds)")
    for i, unit in ((0, "wall"), (1, "CPU")):
        line = f"{unit:>4s}: synthmed FID+KID+P/R {total(ours, ours_all, i):.1f} s"
        if "torch-fidelity" in results:
            tf = results["torch-fidelity"]
            t_tf = total(tf, ("fid", "kid", "precision"), i)
            ratio = {k: tf[k][1][i] / ours[o][1][i] for k, o in (("fid", "fid"), ("kid", "kid"),
                                                                  ("precision", "kid+pr pass"))}
            line += (f"; torch-fidelity {t_tf:.1f} s -> {t_tf / total(ours, ours_all, i):.1f}x "
                     f"(FID {ratio['fid']:.1f}x, KID {ratio['kid']:.1f}x, P/R {ratio['precision']:.1f}x "
                     "vs our shared pass)")
        if "torchmetrics" in results:
            tm = results["torchmetrics"]
            t_tm = total(tm, ("fid", "kid"), i)
            line += (f"; torchmetrics FID+KID {t_tm:.1f} s vs ours {total(ours, ours_fk, i):.1f} s -> "
                     f"{t_tm / total(ours, ours_fk, i):.1f}x (no precision/recall in torchmetrics)")
        print(line)
    refs = {}
    if "torch-fidelity" in results:
        refs["torch-fidelity FID+KID+P/R"] = total(results["torch-fidelity"], ("fid", "kid", "precision"), 0)
    if "torchmetrics" in results:
        refs["torchmetrics FID+KID"] = total(results["torchmetrics"], ("fid", "kid"), 0)
    if args.n > args.dim:  # the floor counts the covariance route of FID (n <= dim takes another)
        print_floor(args.n, args.dim, args.kid_subset_size, 100, total(ours, ours_all, 0), refs)

if __name__ == "__main__":
    main()
