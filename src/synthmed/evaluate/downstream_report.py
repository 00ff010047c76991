"""Aggregation of downstream runs: seed means, paired cluster-bootstrap intervals, comparisons, table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rich.table import Table

from synthmed.classify.metrics import (
    METRICS,
    bootstrap_indices,
    bootstrap_metric_samples,
    classification_metrics,
    combine,
    seed_mean_metrics,
)
from synthmed.results import Metric
from synthmed.results.intervals import percentile_ci


@dataclass
class TrainedModel:
    """One trained model: its condition, seed, training-set make-up and test probabilities."""

    condition: str
    seed: int
    n_real: int
    n_synthetic: int
    probs: np.ndarray
    best_epoch: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ConditionSummary:
    """One training condition over all seeds."""

    name: str
    n_real: int
    n_synthetic: int
    seeds: list[int]
    mean: dict[str, float]
    ci: dict[str, tuple[float, float] | None]
    seed_std: dict[str, float]
    per_seed: list[dict[str, float]]
    best_epochs: list[int]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "n_real": self.n_real, "n_synthetic": self.n_synthetic, "seeds": self.seeds,
            "metrics": {m: Metric(value=self.mean[m], ci95=self.ci[m], detail={"seed_std": self.seed_std[m]})
                        for m in METRICS},
            "per_seed": self.per_seed, "best_epochs": self.best_epochs, "train_seconds": round(self.seconds, 1),
        }


@dataclass
class Comparison:
    """A paired comparison of two conditions (a ratio or a difference) with its interval."""

    name: str
    kind: str  # "ratio" or "difference"
    a: str
    b: str
    value: dict[str, float]
    ci: dict[str, tuple[float, float] | None]

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "a": self.a, "b": self.b,
                "metrics": {m: Metric(value=self.value[m], ci95=self.ci[m]) for m in self.value}}


@dataclass
class DownstreamReport:
    """Everything ``evaluate downstream`` measured."""

    conditions: dict[str, ConditionSummary]
    comparisons: dict[str, Comparison]
    class_names: tuple[str, ...]
    n_test: int
    n_test_patients: int
    n_boot: int
    level: float
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "test": {"split": "test (real)", "n": self.n_test, "patients": self.n_test_patients},
            "classes": list(self.class_names),
            "bootstrap": {"replicates": self.n_boot, "level": self.level, "unit": "patient",
                          "method": "percentile, paired across conditions, metric averaged over seeds"},
            "conditions": {k: v.to_json() for k, v in self.conditions.items()},
            "comparisons": {k: v.to_json() for k, v in self.comparisons.items()},
            "seconds": round(self.seconds, 1),
        }


def _std(values: Sequence[float]) -> float:
    """Sample standard deviation over seeds, ignoring NaN (0 with fewer than two values)."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    return float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def _comparisons(names: Sequence[str]) -> list[tuple[str, str, str, str]]:
    """(comparison name, kind, a, b): TSTR / TRTR, each mix - TRTR, lowR+S - lowR."""
    out = []
    if "TSTR" in names and "TRTR" in names:
        out.append(("TSTR/TRTR", "ratio", "TSTR", "TRTR"))
    for n in names:
        if n.startswith("R+Sx") and "TRTR" in names:
            out.append((f"{n} - TRTR", "difference", n, "TRTR"))
    if "lowR+S" in names and "lowR" in names:
        out.append(("low-data gain (lowR+S - lowR)", "difference", "lowR+S", "lowR"))
    return out


def summarise(runs: Sequence[TrainedModel], y_test: np.ndarray, patients: Sequence[str], *, n_boot: int = 1000,
              level: float = 0.95, class_names: tuple[str, ...] = ("no_tumor", "tumor"),
              boot_seed: int = 0) -> DownstreamReport:
    """Seed-averaged metrics with patient-level bootstrap intervals, and paired comparisons."""
    replicates = bootstrap_indices(len(y_test), patients, n_boot, boot_seed)
    names = list(dict.fromkeys(r.condition for r in runs))
    conditions: dict[str, ConditionSummary] = {}
    samples: dict[str, dict[str, np.ndarray]] = {}
    for name in names:
        rs = [r for r in runs if r.condition == name]
        probs = [r.probs for r in rs]
        per_seed = [{"seed": r.seed, **classification_metrics(y_test, r.probs)} for r in rs]
        samples[name] = bootstrap_metric_samples(y_test, probs, replicates)
        conditions[name] = ConditionSummary(
            name=name, n_real=rs[0].n_real, n_synthetic=rs[0].n_synthetic, seeds=[r.seed for r in rs],
            mean=seed_mean_metrics(y_test, probs),
            ci={m: percentile_ci(samples[name][m], level) for m in METRICS},
            seed_std={m: _std([s[m] for s in per_seed]) for m in METRICS},
            per_seed=per_seed, best_epochs=[r.best_epoch for r in rs], seconds=sum(r.seconds for r in rs))
    comparisons: dict[str, Comparison] = {}
    for cname, kind, a, b in _comparisons(names):
        def op(x: np.ndarray, y: np.ndarray, kind: str = kind) -> np.ndarray:
            return x / y if kind == "ratio" else x - y
        boot = combine(samples[a], samples[b], op)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = {m: float(op(np.float64(conditions[a].mean[m]), np.float64(conditions[b].mean[m])))
                     for m in METRICS}
        comparisons[cname] = Comparison(cname, kind, a, b, value, {m: percentile_ci(boot[m], level) for m in METRICS})
    return DownstreamReport(conditions, comparisons, class_names, len(y_test), len(set(patients)), n_boot, level)


def _cell(mean: float, ci: tuple[float, float] | None) -> str:
    if np.isnan(mean):
        return "—"
    return f"{mean:.3f}" + ("" if ci is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]")


def downstream_tables(report: DownstreamReport) -> list[Table]:
    """Rich tables: metrics per condition (mean over seeds [95 % CI]) and the paired comparisons."""
    pct = f"{report.level:.0%}"
    t = Table(title=f"Downstream classifier on held-out real test images (n = {report.n_test}, "
                    f"{report.n_test_patients} patients; mean over seeds [{pct} CI])")
    t.add_column("condition")
    t.add_column("real", justify="right")
    t.add_column("synthetic", justify="right")
    for m in METRICS:
        t.add_column(m.replace("_", " "), justify="right")
    for c in report.conditions.values():
        t.add_row(c.name, str(c.n_real), str(c.n_synthetic), *(_cell(c.mean[m], c.ci[m]) for m in METRICS))
    tables = [t]
    if report.comparisons:
        u = Table(title=f"Paired comparisons (same bootstrap replicates; {pct} CI)")
        u.add_column("comparison")
        for m in METRICS:
            u.add_column(m.replace("_", " "), justify="right")
        for comp in report.comparisons.values():
            u.add_row(comp.name, *(_cell(comp.value[m], comp.ci[m]) for m in METRICS))
        tables.append(u)
    return tables
