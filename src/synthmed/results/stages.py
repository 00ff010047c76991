"""The result each evaluating stage kind writes: one pydantic model per kind, one :class:`Metric` shape.

Producers build these models and write them with :func:`synthmed.results.write_result`; the report,
``summary.md`` and the pipeline read them back with :func:`synthmed.results.read_result`, never by
guessing keys. Bulky records whose shape belongs to their producer (provenance, per-finding
breakdowns, per-image rows) are plain dictionaries; everything a reader summarises is typed.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from synthmed.results.metric import Agreement, Metric

Headline = tuple[str, Metric]


class StageResult(BaseModel):
    """What every result has: the stage kind it belongs to and the version of its schema."""

    model_config = ConfigDict(extra="forbid")

    FILE: ClassVar[str]
    schema_version: Literal[2] = 2

    def headline(self, stage: str) -> list[Headline]:
        """The numbers a reader wants first, labelled with the stage name."""
        return []


_READABLE = {"tumor_present": "tumour presence", "location": "location"}


def _agreement_headline(prefix: str, stage: str, attributes: dict[str, Agreement],
                        keys: tuple[str, ...]) -> list[Headline]:
    return [(f"{prefix}{_READABLE.get(k, k)} ({stage}, n={attributes[k].n})", attributes[k]) for k in keys
            if k in attributes and attributes[k].n]


# -- fidelity ---------------------------------------------------------------------------------------
class RealVsReal(BaseModel):
    """Scores of two disjoint halves of the real set: the floor a generator is measured against."""

    model_config = ConfigDict(extra="forbid")

    n: int
    seed: int
    metrics: dict[str, Metric]
    note: str | None = None


class FidelityResult(StageResult):
    """``evaluate.fidelity``: Fréchet distance, KID, precision/recall, density/coverage, IS."""

    kind: Literal["evaluate.fidelity"] = "evaluate.fidelity"
    FILE: ClassVar[str] = "fidelity.json"
    extractor: dict[str, Any]
    comparable_with_published: bool
    real: dict[str, Any]
    fake: dict[str, Any]
    n_real: int
    n_fake: int
    metrics: dict[str, Metric]
    real_vs_real: RealVsReal | None = None
    breakdown: dict[str, Any] | None = None
    bootstrap: dict[str, Any] = Field(default_factory=dict)
    conventions: dict[str, str] = Field(default_factory=dict)
    seeds: dict[str, int] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    timing_s: dict[str, float] = Field(default_factory=dict)
    provenance: dict[str, Any] = Field(default_factory=dict)

    def headline(self, stage: str) -> list[Headline]:
        feats = self.extractor.get("name", "?")
        out = [(f"{label} ({stage}, {feats})", self.metrics[key]) for key, label in
               (("fid", "Fréchet distance"), ("precision", "precision"), ("recall", "recall")) if key in self.metrics]
        if self.real_vs_real is not None and "fid" in self.real_vs_real.metrics:
            out.append((f"Fréchet distance real vs real ({stage}): the floor", self.real_vs_real.metrics["fid"]))
        return out


# -- adherence and caption accuracy ---------------------------------------------------------------
class AdherenceResult(StageResult):
    """``evaluate.adherence``: per attribute, does the judge see in each image what its prompt asked."""

    kind: Literal["evaluate.adherence"] = "evaluate.adherence"
    FILE: ClassVar[str] = "adherence.json"
    n: int
    table: dict[str, float | None]
    attributes: dict[str, Agreement]
    judge_real_test_accuracy: dict[str, Any] = Field(default_factory=dict)
    judge_unreliable_attributes: list[str] = Field(default_factory=list)
    fake: str | None = None
    fake_hash: str | None = None
    judge: str | None = None
    threshold: float | None = None
    judge_real_test: dict[str, Any] = Field(default_factory=dict)
    provenance: dict[str, Any] = Field(default_factory=dict)

    def headline(self, stage: str) -> list[Headline]:
        return _agreement_headline("adherence: ", stage, self.attributes, ("tumor_present", "location"))


class MaskAdherenceResult(StageResult):
    """``evaluate.mask-adherence``: does a model trained on real images find each generated lesion where its mask says.

    ``reader`` names that model (a lesion segmenter or a localiser) and ``threshold`` is its own.

    ``metrics`` over every image, ``groups`` per requested size category (and ``no_tumour``), and
    ``reference``: the same figures of the same model on real held-out images against their own masks.
    """

    kind: Literal["evaluate.mask-adherence"] = "evaluate.mask-adherence"
    FILE: ClassVar[str] = "mask_adherence.json"
    n: int
    n_lesion: int
    threshold: float
    metrics: dict[str, Metric]
    groups: dict[str, dict[str, Metric]] = Field(default_factory=dict)
    reference: dict[str, Metric] = Field(default_factory=dict)
    reference_groups: dict[str, dict[str, Metric]] = Field(default_factory=dict)
    fake: str | None = None
    fake_hash: str | None = None
    reader: str | None = None
    real: str | None = None
    real_split: str | None = None

    def headline(self, stage: str) -> list[Headline]:
        return [(f"mask adherence: {k.replace('_', ' ')} ({stage}, n={m.n})", m) for k, m in self.metrics.items()
                if k in ("dice", "centre_inside") and m.n]


class LocalizationTSTRResult(StageResult):
    """``evaluate.localization-tstr``: lesion segmenters trained on real, synthetic and mixed pairs, tested on real.

    ``conditions``: per condition (TRTR, TSTR, R+S, lowR, lowR+S) pixel AUROC, pixel Dice and image
    AUROC with patient-bootstrap intervals; ``comparisons``: TSTR/TRTR and the gains, paired.
    """

    kind: Literal["evaluate.localization-tstr"] = "evaluate.localization-tstr"
    FILE: ClassVar[str] = "localization_tstr.json"
    conditions: dict[str, dict[str, Metric]]
    comparisons: dict[str, dict[str, Metric]] = Field(default_factory=dict)
    training_pairs: dict[str, dict[str, int]] = Field(default_factory=dict)
    n_test: int
    n_test_patients: int
    steps: int
    real: str | None = None
    synthetic: str | None = None
    synthetic_hash: str | None = None
    seconds: float | None = None

    def headline(self, stage: str) -> list[Headline]:
        ratio = self.comparisons.get("TSTR/TRTR", {}).get("pixel_auroc")
        return [(f"localisation TSTR/TRTR pixel AUROC ({stage}, n={ratio.n})", ratio)] if ratio else []


class CaptionerScores(BaseModel):
    model_config = ConfigDict(extra="forbid")

    missing_predictions: int = 0
    unmatched_predictions: int = 0
    attributes: dict[str, Agreement]


class CaptionsResult(StageResult):
    """``evaluate.captions``: each captioner's accuracy per attribute against reference findings."""

    kind: Literal["evaluate.captions"] = "evaluate.captions"
    FILE: ClassVar[str] = "captions.json"
    n_reference: int
    table: dict[str, dict[str, float | None]]
    captioners: dict[str, CaptionerScores]
    pred: str | None = None
    ref: str | None = None
    provenance: dict[str, Any] = Field(default_factory=dict)

    def headline(self, stage: str) -> list[Headline]:
        return [h for name, c in self.captioners.items()
                for h in _agreement_headline(f"captioner {name}: ", stage, c.attributes, ("tumor_present",))]


# -- downstream -------------------------------------------------------------------------------------
class DownstreamCondition(BaseModel):
    """One training condition (TRTR, TSTR, a mix): seed-averaged metrics with patient-bootstrap intervals."""

    model_config = ConfigDict(extra="forbid")

    n_real: int
    n_synthetic: int
    seeds: list[int]
    metrics: dict[str, Metric]
    per_seed: list[dict[str, Any]] = Field(default_factory=list)
    best_epochs: list[int] = Field(default_factory=list)
    train_seconds: float = 0.0


class DownstreamComparison(BaseModel):
    """A paired comparison of two conditions (``ratio`` a/b or ``difference`` a-b)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["ratio", "difference"]
    a: str
    b: str
    metrics: dict[str, Metric]


class DownstreamResult(StageResult):
    """``evaluate.downstream``: classifiers trained on real, synthetic and mixed data, tested on real."""

    kind: Literal["evaluate.downstream"] = "evaluate.downstream"
    FILE: ClassVar[str] = "downstream.json"
    test: dict[str, Any]
    classes: list[str]
    bootstrap: dict[str, Any]
    conditions: dict[str, DownstreamCondition]
    comparisons: dict[str, DownstreamComparison] = Field(default_factory=dict)
    seconds: float = 0.0
    config: dict[str, Any] = Field(default_factory=dict)
    classifier: dict[str, Any] = Field(default_factory=dict)
    device: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    provenance: dict[str, Any] = Field(default_factory=dict)

    def headline(self, stage: str) -> list[Headline]:
        return [(f"AUROC {name} ({stage})", c.metrics["auroc"]) for name, c in self.conditions.items()
                if "auroc" in c.metrics]


# -- privacy ----------------------------------------------------------------------------------------
class PrivacyResult(StageResult):
    """``evaluate.privacy``: which synthetic images look like copies of training images."""

    kind: Literal["evaluate.privacy"] = "evaluate.privacy"
    FILE: ClassVar[str] = "privacy.json"
    memorisation: Metric
    n_synthetic: int
    n_train: int
    n_reference: int
    reference: str
    rule: str
    spaces: dict[str, dict[str, Any]]
    warnings: list[str] = Field(default_factory=list)
    extractor: dict[str, Any] = Field(default_factory=dict)
    pairs: list[dict[str, Any]] = Field(default_factory=list)
    images: list[dict[str, Any]] = Field(default_factory=list)
    data: dict[str, Any] = Field(default_factory=dict)
    provenance: dict[str, Any] = Field(default_factory=dict)

    @property
    def likely_copies(self) -> int:
        return int(self.memorisation.detail.get("likely_copies", 0))

    def headline(self, stage: str) -> list[Headline]:
        return [(f"fraction of likely copies of training images ({stage}, n={self.n_synthetic})", self.memorisation)]


# -- localisation and explanation ------------------------------------------------------------------
class LocalizationResult(StageResult):
    """``localize.predict`` (and ``synthmed localize evaluate``): pixel and image metrics of anomaly maps."""

    kind: Literal["localize.predict"] = "localize.predict"
    FILE: ClassVar[str] = "metrics.json"
    threshold: float
    n_images: int
    n_pixel_images: int
    metrics: dict[str, Metric]
    image_score: str | None = None
    test_time_flip: bool | None = None
    test_time_shift: int | None = None
    split: str | None = None
    images_per_second: float | None = None
    n_matched: int | None = None

    def headline(self, stage: str) -> list[Headline]:
        return [(f"{k} ({stage})", m) for k, m in self.metrics.items() if "auroc" in k]


class ExplainScores(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int
    parsed_fraction: float | None
    attributes: dict[str, Agreement]


class ExplainResult(StageResult):
    """``explain``: a VLM's explanation of each localisation, and its findings' accuracy per prompt mode."""

    kind: Literal["explain"] = "explain"
    FILE: ClassVar[str] = "explanation.json"
    prompt_version: str
    model: str
    modes: list[str]
    n_images: int
    scores: dict[str, ExplainScores]
    items: list[dict[str, Any]] = Field(default_factory=list)
    provenance: dict[str, Any] = Field(default_factory=dict)

    def headline(self, stage: str) -> list[Headline]:
        return [h for mode, s in self.scores.items()
                for h in _agreement_headline(f"explain {mode}: ", stage, s.attributes, ("tumor_present",))]



# -- reader study ------------------------------------------------------------------------------------
class ReaderScores(BaseModel):
    """One reader's (or the pooled) scores: telling synthetic from real, and realism.

    Attributes:
        roc: (false-positive rate, true-positive rate) of calling "synthetic" at each confidence threshold.
    """

    model_config = ConfigDict(extra="forbid")

    n: int
    metrics: dict[str, Metric]
    roc: list[tuple[float, float]] = Field(default_factory=list)


class StudyResult(StageResult):
    """``study`` (``synthmed study score``): how well readers told real from synthetic images."""

    kind: Literal["study"] = "study"
    FILE: ClassVar[str] = "results.json"
    n_images: int
    n_real: int
    n_synthetic: int
    questions: list[str]
    readers: dict[str, ReaderScores]
    pooled: ReaderScores
    adherence: dict[str, dict[str, Agreement]] = Field(default_factory=dict)
    conventions: dict[str, str] = Field(default_factory=dict)
    bootstrap: dict[str, Any] = Field(default_factory=dict)

    def headline(self, stage: str) -> list[Headline]:
        m = self.pooled.metrics
        out = [(f"readers: {label} ({stage}, {len(self.readers)} readers)", m[key]) for key, label in
               (("accuracy", "accuracy telling real from synthetic"), ("auroc", "ROC AUC")) if key in m]
        return out + _agreement_headline("readers on synthetic images: ", stage, self.adherence.get("synthetic", {}),
                                         ("tumor_present",))
