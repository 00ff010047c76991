"""One shape for every measured number: its value, its 95 % interval, its sample size and a note."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Metric(BaseModel):
    """A measured number.

    Attributes:
        value: The estimate (None: it could not be computed, e.g. AUROC of one class).
        ci95: Its 95 % interval, when one was computed.
        n: The number of items it was measured on, when that is one number.
        note: Why the value is missing or how to read it.
        detail: The estimator's own parameters (k of a k-NN estimate, KID's subset size,
            a seed-to-seed standard deviation): recorded, never needed to read the value.
    """

    model_config = ConfigDict(extra="forbid")

    value: float | None
    ci95: tuple[float, float] | None = None
    n: int | None = None
    note: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)

    def text(self, digits: int = 3) -> str:
        """``0.879 [0.833, 0.913]`` (— for a missing value)."""
        def num(x: float | None) -> str:
            return "—" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"
        return num(self.value) + (f" [{num(self.ci95[0])}, {num(self.ci95[1])}]" if self.ci95 else "")


class Agreement(Metric):
    """Accuracy of one findings attribute (``value``) against a reference, with its counts.

    Attributes:
        correct: Items whose prediction matched the reference.
        missing: Items with no prediction for the attribute (counted wrong).
        confusion: (reference, predicted, count) triples.
        confusion_matrix: Rows = reference value, columns = predicted value.
    """

    correct: int = 0
    missing: int = 0
    confusion: list[dict[str, Any]] = Field(default_factory=list)
    confusion_matrix: dict[str, Any] | None = None
