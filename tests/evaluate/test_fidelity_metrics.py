"""The feature metrics against independent references: scipy sqrtm, explicit torch-fidelity formulas,
torchmetrics' functional pieces, and brute-force k-NN."""

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.spatial.distance import cdist

from synthmed.evaluate import density_coverage, fid, inception_score, kid, precision_recall
from synthmed.evaluate._pairwise import KernelSpec, pairwise_pass
from synthmed.evaluate.fidelity import (
    SmallSampleWarning,
    feature_statistics,
    fidelity_scores,
    frechet_distance,
    kid_subsets,
    membership,
)

RTOL = 1e-4


def _features(n_real=400, n_fake=350, d=32, seed=0, shift=0.3):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    real = np.maximum(rng.normal(size=(n_real, d)) @ mix + 0.5, 0).astype(np.float32)
    fake = np.maximum(rng.normal(size=(n_fake, d)) @ mix * 1.1 + 0.5 + shift, 0).astype(np.float32)
    return real, fake


def _ref_fid(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))


def _ref_fid_eigvals(a, b):
    """torch-fidelity 0.4's formula: sum of sqrt of eigvals(S1 S2) (complex), real part."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    tr = np.sum(np.sqrt(np.linalg.eigvals(s1 @ s2).astype(complex)).real)
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr)


def _ref_kid(real, fake, subsets, m, seed=2020):
    """Explicit torch-fidelity KID: RandomState draws input1 (fake) then input2 (real); unbiased MMD^2."""
    rng = np.random.RandomState(seed)
    x, y = fake.astype(np.float64), real.astype(np.float64)
    d = x.shape[1]
    vals = []
    for _ in range(subsets):
        f1 = x[rng.choice(len(x), m, replace=False)]
        f2 = y[rng.choice(len(y), m, replace=False)]
        k11, k22, k12 = ((f1 @ f1.T) / d + 1) ** 3, ((f2 @ f2.T) / d + 1) ** 3, ((f1 @ f2.T) / d + 1) ** 3
        vals.append((k11.sum() - np.trace(k11) + k22.sum() - np.trace(k22)) / (m * (m - 1)) - 2 * k12.sum() / m**2)
    return float(np.mean(vals)), float(np.std(vals))


def _ref_pr(real, fake, k):
    rr, ff, fr = cdist(real, real), cdist(fake, fake), cdist(fake, real)
    r_rad, f_rad = np.sort(rr, 1)[:, k], np.sort(ff, 1)[:, k]
    return float((fr <= r_rad[None, :]).any(1).mean()), float((fr <= f_rad[:, None]).any(0).mean())


def _ref_dc(real, fake, k):
    rr, rf = cdist(real, real), cdist(real, fake)
    rad = np.sort(rr, 1)[:, k]
    return float((rf < rad[:, None]).sum(0).mean() / k), float((rf.min(1) < rad).mean())


def test_fid_matches_scipy_sqrtm_and_torchmetrics():
    real, fake = _features()
    ours = fid(real, fake)
    assert ours == pytest.approx(_ref_fid(real, fake), rel=RTOL)
    from torchmetrics.image.fid import _compute_fid

    (m1, s1), (m2, s2) = feature_statistics(real), feature_statistics(fake)
    tm = float(_compute_fid(*(torch.from_numpy(v) for v in (m1, s1, m2, s2))))
    assert ours == pytest.approx(tm, rel=RTOL)
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(ours, rel=1e-10)
    scale = 2 * np.trace(s1)                                       # FID's terms are of this size
    assert fid(torch.from_numpy(real), torch.from_numpy(real)) == pytest.approx(0.0, abs=1e-12 * scale)


def test_fid_small_n_and_singular_covariance_paths():
    real, fake = _features(n_real=20, n_fake=25, d=40)           # n <= d: nuclear-norm path
    assert fid(real, fake) == pytest.approx(_ref_fid_eigvals(real, fake), rel=RTOL)
    real, fake = _features(n_real=300, n_fake=300, d=24)
    real[:, 3] = 0.0                                                # a dead unit: S1 singular -> eigh path
    fake[:, 3] = 0.0
    assert fid(real, fake) == pytest.approx(_ref_fid_eigvals(real, fake), rel=RTOL)


def test_kid_matches_explicit_formula_and_torchmetrics():
    real, fake = _features(n_real=300, n_fake=260, d=16)
    res = kid(real, fake, subsets=20, subset_size=100)
    ref_mean, ref_std = _ref_kid(real, fake, 20, 100)
    assert res.mean == pytest.approx(ref_mean, rel=RTOL) and res.std == pytest.approx(ref_std, rel=RTOL)
    assert (res.subsets, res.subset_size, res.seed) == (20, 100, 2020)
    from torchmetrics.image.kid import poly_mmd

    ri, fi = kid_subsets(300, 260, subsets=20, subset_size=100, seed=2020)
    tm = np.mean([float(poly_mmd(torch.from_numpy(real[r]).double(), torch.from_numpy(fake[f]).double()))
                  for r, f in zip(ri, fi, strict=True)])
    assert res.mean == pytest.approx(tm, rel=RTOL)


def test_kid_small_n_shrinks_subsets_with_warning():
    real, fake = _features(n_real=80, n_fake=60, d=8)
    with pytest.warns(SmallSampleWarning, match="using subsets of 60"):
        res = kid(real, fake)
    assert res.subset_size == 60
    assert res.mean == pytest.approx(_ref_kid(real, fake, 100, 60)[0], rel=RTOL)


def test_kid_count_weights_equal_explicit_duplicates():
    """Bootstrap counts: pairs of copies of one point count as distinct samples."""
    real, fake = _features(n_real=30, n_fake=25, d=6)
    rng = np.random.default_rng(1)
    ri, fi = rng.integers(0, 30, size=(3, 12)), rng.integers(0, 25, size=(3, 12))
    spec = KernelSpec(membership(ri, 30), membership(fi, 25), 3, 1 / 6, 1.0)
    res = pairwise_pass(torch.from_numpy(real), torch.from_numpy(fake), pr_k=None, kernel=spec, chunk=7)
    k0, m = res.kid_shift, 12                          # sums are of k - k0 (MMD is shift invariant)
    for s in range(3):
        x, y = real[ri[s]].astype(np.float64), fake[fi[s]].astype(np.float64)
        kxx, kyy, kxy = (x @ x.T / 6 + 1) ** 3, (y @ y.T / 6 + 1) ** 3, (y @ x.T / 6 + 1) ** 3
        assert float(res.kid_xx[s]) + k0 * m * (m - 1) == pytest.approx(kxx.sum() - np.trace(kxx), rel=1e-9)
        assert float(res.kid_yy[s]) + k0 * m * (m - 1) == pytest.approx(kyy.sum() - np.trace(kyy), rel=1e-9)
        assert float(res.kid_xy[s]) + k0 * m * m == pytest.approx(kxy.sum(), rel=1e-9)


@pytest.mark.parametrize("gram_dtype", ["float64", "float32"])
@pytest.mark.parametrize("chunk", [37, 4096])
def test_precision_recall_density_coverage_brute_force(chunk, gram_dtype):
    real, fake = _features(n_real=150, n_fake=130, d=12)
    r64, f64 = real.astype(np.float64), fake.astype(np.float64)
    scores, _ = fidelity_scores(real, fake, compute_fid=False, compute_kid=False, pr_k=3, dc_k=5, chunk=chunk,
                                gram_dtype=gram_dtype)
    p, r = _ref_pr(r64, f64, 3)
    assert (scores.precision_recall.precision, scores.precision_recall.recall) == pytest.approx((p, r), abs=1e-12)
    assert scores.precision_recall.f1 == pytest.approx(2 * p * r / (p + r))
    d, c = _ref_dc(r64, f64, 5)
    assert (scores.density_coverage.density, scores.density_coverage.coverage) == pytest.approx((d, c), abs=1e-12)
    assert precision_recall(real, fake, k=3).precision == pytest.approx(p, abs=1e-12)
    assert density_coverage(real, fake).coverage == pytest.approx(c, abs=1e-12)
    assert precision_recall(real, fake, k=7).recall == pytest.approx(_ref_pr(r64, f64, 7)[1], abs=1e-12)


def test_precision_recall_react_to_mode_dropping_and_outliers():
    rng = np.random.default_rng(3)
    real = np.concatenate([rng.normal(size=(200, 4)), rng.normal(size=(200, 4)) + 8])
    dropped = rng.normal(size=(300, 4))                          # only one of two modes
    outliers = np.concatenate([rng.normal(size=(150, 4)), rng.normal(size=(150, 4)) + 30])
    pr_drop, pr_out = precision_recall(real, dropped), precision_recall(real, outliers)
    assert pr_drop.precision > 0.9 and pr_drop.recall < 0.6
    assert pr_out.precision < 0.6


def test_inception_score_matches_reference_and_bounds():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(500, 20)) * 3
    x = logits[np.random.RandomState(2020).permutation(500)]
    p = np.exp(x - x.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    scores = []
    for i in range(10):
        part = p[i * 50:(i + 1) * 50]
        scores.append(np.exp((part * (np.log(part) - np.log(part.mean(0, keepdims=True)))).sum(1).mean()))
    res = inception_score(logits)
    assert res.mean == pytest.approx(np.mean(scores), rel=1e-9) and res.std == pytest.approx(np.std(scores), rel=1e-6)
    assert inception_score(np.zeros((100, 5))).mean == pytest.approx(1.0)
    confident = np.eye(5)[np.arange(100) % 5] * 50
    assert inception_score(confident, splits=2, seed=None).mean == pytest.approx(5.0, rel=1e-6)


def test_combined_pass_equals_separate_functions():
    real, fake = _features(n_real=220, n_fake=200, d=10)
    scores, _ = fidelity_scores(real, fake, kid_subsets_n=10, kid_subset_size_max=50)
    assert scores.fid == pytest.approx(fid(real, fake), rel=1e-12)
    assert scores.kid.mean == pytest.approx(kid(real, fake, subsets=10, subset_size=50).mean, rel=1e-12)


def test_input_errors_name_the_argument():
    real, fake = _features(n_real=10, n_fake=10, d=4)
    with pytest.raises(ValueError, match="differ in dimension"):
        fid(real, fake[:, :3])
    with pytest.raises(ValueError, match="real must be a \\(N, D\\)"):
        fid(real[0], fake)
    bad = fake.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="fake contains NaN"):
        kid(real, bad)
    with pytest.raises(ValueError, match="k=3 needs more than 3"):
        precision_recall(real[:3], fake)
    with pytest.raises(ValueError, match="splits"):
        inception_score(np.zeros((5, 3)), splits=10)
