"""``synthmed study score``: how well readers told real from synthetic, scored as visual Turing tests are.

"Synthetic" is the positive class. A reader calls an image synthetic at confidence
>= :data:`~synthmed.study.layout.CALLS_SYNTHETIC_FROM` on the 1-6 scale; the ROC AUC uses the
full scale. Per reader: accuracy, sensitivity and specificity with Wilson intervals, AUC with a
bootstrap over images. Pooled: the same figures with a bootstrap over readers and images
together (Obuchowski's reader-case resampling), Fleiss' kappa of the calls (bootstrap over images),
mean realism of real and synthetic images with a two-sided Mann-Whitney U test, and, when the study
asked about findings, the readers' findings against each image's findings (requested ones for
synthetic images, true ones for real images).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from synthmed.classify.metrics import auroc
from synthmed.errors import DataError
from synthmed.findings.agreement import agreement_metric, attribute_agreement
from synthmed.findings.schema import BrainMRIFindings
from synthmed.results import Metric, ReaderScores, StudyResult, write_result
from synthmed.results.intervals import percentile_ci, wilson_interval
from synthmed.study.layout import CALLS_SYNTHETIC_FROM, CONFIDENCE_LEVELS, RESULTS_FILE, read_key, read_settings
from synthmed.study.stats import fleiss_kappa, two_level_bootstrap
from synthmed.study.store import AnswerStore

logger = logging.getLogger(__name__)


def _rate(hits: int, n: int) -> Metric:
    return Metric(value=hits / n if n else None, ci95=wilson_interval(hits, n) if n else None, n=n)


def _calls(confidence: np.ndarray) -> np.ndarray:
    return confidence >= CALLS_SYNTHETIC_FROM


def _auc(y: np.ndarray, confidence: np.ndarray) -> float:
    return auroc(y, confidence) if len(y) else float("nan")


def _ratings_metrics(y: np.ndarray, confidence: np.ndarray) -> dict[str, Metric]:
    call = _calls(confidence)
    pos = y == 1
    auc = _auc(y, confidence)
    return {"accuracy": _rate(int((call == pos).sum()), len(y)),
            "sensitivity": _rate(int((call & pos).sum()), int(pos.sum())),
            "specificity": _rate(int((~call & ~pos).sum()), int((~pos).sum())),
            "auroc": Metric(value=None if np.isnan(auc) else auc, n=len(y))}


def _roc(y: np.ndarray, confidence: np.ndarray) -> list[tuple[float, float]]:
    """(FPR, TPR) of "synthetic at confidence >= t" for every threshold t, from (1, 1) down to (0, 0)."""
    pos, neg = int((y == 1).sum()), int((y == 0).sum())
    if not pos or not neg:
        return []
    return [(float(((confidence >= t) & (y == 0)).sum() / neg), float(((confidence >= t) & (y == 1)).sum() / pos))
            for t in range(1, CONFIDENCE_LEVELS + 2)]


def _realism(realism: np.ndarray, y: np.ndarray) -> dict[str, Metric]:
    from scipy.stats import mannwhitneyu

    ok = ~np.isnan(realism)
    real, synth = realism[ok & (y == 0)], realism[ok & (y == 1)]
    out = {"realism_real": Metric(value=float(real.mean()) if real.size else None, n=int(real.size)),
           "realism_synthetic": Metric(value=float(synth.mean()) if synth.size else None, n=int(synth.size))}
    if real.size and synth.size:
        test = mannwhitneyu(real, synth, alternative="two-sided")
        out["realism_mann_whitney_p"] = Metric(
            value=float(test.pvalue), n=int(real.size + synth.size),
            detail={"u": float(test.statistic), "n_real": int(real.size), "n_synthetic": int(synth.size)},
            note="two-sided Mann-Whitney U of realism scores, real vs synthetic (answers pooled over readers)")
    return out


def _per_reader(y: np.ndarray, conf: np.ndarray, realism: np.ndarray, *, n_boot: int, seed: int) -> ReaderScores:
    metrics = _ratings_metrics(y, conf)
    if n_boot and len(y):
        rng = np.random.default_rng(seed)
        reps = [_auc(y[i], conf[i]) for i in (rng.integers(0, len(y), len(y)) for _ in range(n_boot))]
        metrics["auroc"].ci95 = percentile_ci(reps)
    metrics.update(_realism(realism, y))
    return ReaderScores(n=len(y), metrics=metrics, roc=_roc(y, conf))


def _pooled(ratings: np.ndarray, realism: np.ndarray, truth: np.ndarray, *, n_boot: int,
            seed: int) -> ReaderScores:
    answered = ~np.isnan(ratings)
    y = np.broadcast_to(truth, ratings.shape)[answered]
    conf = ratings[answered]
    metrics = _ratings_metrics(y, conf)
    for m in metrics.values():  # answers of one reader or one image are not independent: no Wilson interval
        m.ci95 = None
        m.note = "pooled over readers" + ("; interval: bootstrap over readers and images" if n_boot else "")
    counts = np.stack([(answered & ~_calls(np.nan_to_num(ratings))).sum(axis=0),
                       (answered & _calls(np.nan_to_num(ratings))).sum(axis=0)], axis=1)
    metrics["fleiss_kappa"] = Metric(value=_finite(fleiss_kappa(counts)), n=int((counts.sum(axis=1) >= 2).sum()),
                                     note="agreement of the readers' real/synthetic calls"
                                          + ("; interval: bootstrap over images" if n_boot else ""))
    if n_boot:
        def stats(sub: np.ndarray, images: np.ndarray) -> np.ndarray:
            ok = ~np.isnan(sub)
            yy, cc = np.broadcast_to(truth[images], sub.shape)[ok], sub[ok]
            if not len(yy):
                return np.full(4, np.nan)
            call, pos = _calls(cc), yy == 1
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.array([(call == pos).mean(), (call & pos).sum() / pos.sum(),
                                 (~call & ~pos).sum() / (~pos).sum(), _auc(yy, cc)])

        reps = two_level_bootstrap(ratings, stats, n_boot=n_boot, seed=seed)
        for j, key in enumerate(("accuracy", "sensitivity", "specificity", "auroc")):
            metrics[key].ci95 = percentile_ci(reps[:, j])
        rng = np.random.default_rng(seed + 1)
        kappas = [fleiss_kappa(counts[rng.integers(0, len(counts), len(counts))]) for _ in range(n_boot)]
        metrics["fleiss_kappa"].ci95 = percentile_ci(kappas)
    metrics.update(_realism(realism[answered], y))
    return ReaderScores(n=int(answered.sum()), metrics=metrics, roc=_roc(y, conf))


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _findings_pairs(answers: list[dict[str, Any]], key: Any, origin: str) -> list[tuple[Any, Any]]:
    from synthmed.findings.schema import findings_from_dict

    pairs = []
    for a in answers:
        entry = key.items[a["item"]]
        if entry.origin != origin or a.get("tumor_present") is None or not entry.findings:
            continue
        ref = findings_from_dict(entry.findings)
        if not isinstance(ref, BrainMRIFindings):
            continue
        pred = BrainMRIFindings(tumor_present=a["tumor_present"], hemisphere=a.get("hemisphere"))
        pairs.append((pred, ref))
    return pairs


def score_study(study: str | Path, *, out: str | Path | None = None, n_boot: int = 2000,
                seed: int = 0) -> StudyResult:
    """Score the answers given so far and write them to ``out`` (default ``STUDY/results.json``).

    Raises:
        DataError: the study has no key, or no answers yet.
    """
    study = Path(study)
    settings = read_settings(study)
    key = read_key(study)
    store = AnswerStore(study)
    answers = store.answers()
    if not answers:
        raise DataError("no answers yet: readers answer at the links `synthmed study serve` prints", study)
    items = settings.items
    col = {item: j for j, item in enumerate(items)}
    truth = np.array([key.items[i].origin == "synthetic" for i in items], dtype=np.int64)
    names = [r.name for r in store.readers() if any(a["reader"] == r.name for a in answers)]
    row = {name: i for i, name in enumerate(names)}
    ratings = np.full((len(names), len(items)), np.nan)
    realism = np.full_like(ratings, np.nan)
    for a in answers:
        ratings[row[a["reader"]], col[a["item"]]] = a["confidence"]
        if a["realism"] is not None:
            realism[row[a["reader"]], col[a["item"]]] = a["realism"]

    readers = {}
    for name, i in row.items():
        ok = ~np.isnan(ratings[i])
        readers[name] = _per_reader(truth[ok], ratings[i][ok], realism[i][ok], n_boot=n_boot, seed=seed + i)
    result = StudyResult(
        n_images=len(items), n_real=int((truth == 0).sum()), n_synthetic=int(truth.sum()),
        questions=list(settings.questions), readers=readers,
        pooled=_pooled(ratings, realism, truth, n_boot=n_boot, seed=seed),
        adherence={origin: {k: agreement_metric(v) for k, v in attribute_agreement(
            _findings_pairs(answers, key, origin), ("tumor_present", "hemisphere")).items() if v.n}
            for origin in ("synthetic", "real")} if "findings" in settings.questions else {},
        conventions={"positive": "synthetic", "call": f"confidence >= {CALLS_SYNTHETIC_FROM} of 1-6 calls an image "
                     "synthetic", "auroc": "from the 1-6 confidence ratings",
                     "adherence": "readers' findings vs requested findings (synthetic) or true findings (real)"},
        bootstrap={"n": n_boot, "seed": seed, "per_reader": "images", "pooled": "readers and images"})
    path = Path(out) if out is not None else study / RESULTS_FILE
    write_result(path, result)
    logger.info("study: %d answers from %d readers scored; wrote %s", len(answers), len(names), path)
    return result
