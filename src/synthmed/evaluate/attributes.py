"""Per-attribute agreement between predicted and reference findings.

The same computation scores a captioner against ground truth (seed 000's caption-accuracy
table) and a generator's images against their requested findings (prompt adherence):
presence is scored on every pair, every other attribute on the pairs where the reference
has a tumour and states that attribute.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from synthmed.findings.schema import BrainMRIFindings

BRAIN_ATTRIBUTES: tuple[str, ...] = (
    "tumor_present", "hemisphere", "lobe", "size_category", "shape", "intensity", "orientation", "edema",
    "mass_effect",
)


@dataclass
class AttributeAgreement:
    """Agreement on one attribute.

    Attributes:
        attribute: The findings field.
        n: Pairs scored.
        correct: Pairs where prediction equals reference.
        missing: Pairs where the prediction left the attribute unset (counted as wrong).
        confusion: (reference, prediction) -> count.
    """

    attribute: str
    n: int = 0
    correct: int = 0
    missing: int = 0
    confusion: Counter = field(default_factory=Counter)

    @property
    def accuracy(self) -> float | None:
        """correct / n, or None when nothing was scored."""
        return self.correct / self.n if self.n else None

    def to_dict(self) -> dict[str, object]:
        return {
            "attribute": self.attribute, "n": self.n, "correct": self.correct, "missing": self.missing,
            "accuracy": self.accuracy,
            "confusion": [{"reference": r, "predicted": p, "count": c} for (r, p), c in sorted(
                self.confusion.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1])))],
        }


def attribute_agreement(
    pairs: Iterable[tuple[BrainMRIFindings | None, BrainMRIFindings]],
    attributes: Sequence[str] = BRAIN_ATTRIBUTES,
) -> dict[str, AttributeAgreement]:
    """Score (predicted, reference) findings pairs attribute by attribute.

    A prediction of ``None`` (the captioner failed) counts as wrong on every attribute the
    reference states.
    """
    out = {a: AttributeAgreement(a) for a in attributes}
    for pred, ref in pairs:
        for a in attributes:
            if a != "tumor_present" and not ref.tumor_present:
                continue
            want = getattr(ref, a)
            if want is None:
                continue
            got = getattr(pred, a) if pred is not None else None
            agg = out[a]
            agg.n += 1
            agg.correct += int(got == want)
            agg.missing += int(got is None)
            agg.confusion[(want, got)] += 1
    return out
