"""Typed structured findings, one schema per modality.

A finding is what a radiologist would say about an image in a structured report: is there
a lesion, where, how large, what shape and signal. Captioners produce findings, the prompt
renderer turns them into text, the parser turns text back into findings, and evaluation
compares requested with observed findings attribute by attribute.

Conventions (brain MRI):

* ``hemisphere`` is in *patient* coordinates. Images are shown in the radiological display
  convention, so the patient's left is on the image's right.
* ``size_mm`` is the largest in-plane diameter (maximum Feret diameter) in millimetres;
  ``size_category`` follows :data:`SIZE_CATEGORY_BOUNDS_MM`.
* ``lobe`` is the image region of the axial slice named after the lobe that dominates it
  (see :mod:`synthmed.findings.anatomy`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

Hemisphere = Literal["left", "right"]
Lobe = Literal["frontal", "parietal", "temporal", "occipital"]
SizeCategory = Literal["small", "medium", "large"]
Shape = Literal["round", "oval", "lobulated", "irregular"]
Intensity = Literal["hyperintense", "hypointense", "isointense", "ring-enhancing"]
Orientation = Literal["horizontal", "vertical", "oblique"]
TumorType = Literal["glioma", "meningioma", "pituitary"]

HEMISPHERES: tuple[str, ...] = Hemisphere.__args__  # type: ignore[attr-defined]
LOBES: tuple[str, ...] = Lobe.__args__  # type: ignore[attr-defined]
SIZE_CATEGORIES: tuple[str, ...] = SizeCategory.__args__  # type: ignore[attr-defined]
SHAPES: tuple[str, ...] = Shape.__args__  # type: ignore[attr-defined]
INTENSITIES: tuple[str, ...] = Intensity.__args__  # type: ignore[attr-defined]
ORIENTATIONS: tuple[str, ...] = Orientation.__args__  # type: ignore[attr-defined]
TUMOR_TYPES: tuple[str, ...] = TumorType.__args__  # type: ignore[attr-defined]

#: Every brain-MRI attribute with a closed set of values, in one fixed order (booleans False
#: first). Judges, findings grids and report tables derive their value lists from this.
BRAIN_ATTRIBUTE_VALUES: dict[str, tuple[object, ...]] = {
    "tumor_present": (False, True),
    "tumor_type": TUMOR_TYPES,
    "hemisphere": HEMISPHERES,
    "lobe": LOBES,
    "size_category": SIZE_CATEGORIES,
    "shape": SHAPES,
    "intensity": INTENSITIES,
    "orientation": ORIENTATIONS,
    "edema": (False, True),
    "mass_effect": (False, True),
}

#: Upper bounds (mm, exclusive) of the size categories; "large" has no upper bound.
SIZE_CATEGORY_BOUNDS_MM: dict[str, float] = {"small": 20.0, "medium": 40.0}


def size_category_for(diameter_mm: float) -> str:
    """Return the size category of a lesion with the given largest diameter in mm."""
    if diameter_mm < SIZE_CATEGORY_BOUNDS_MM["small"]:
        return "small"
    if diameter_mm < SIZE_CATEGORY_BOUNDS_MM["medium"]:
        return "medium"
    return "large"


class _Findings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what is stored in ``metadata.jsonl``)."""
        return self.model_dump(mode="json")


_TUMOR_ATTRIBUTES = (
    "tumor_type", "hemisphere", "lobe", "size_mm", "size_category", "shape", "intensity",
    "orientation", "edema", "mass_effect",
)


class BrainMRIFindings(_Findings):
    """Findings of an axial brain MRI slice (contrast-enhanced T1 by default).

    Every attribute but ``tumor_present`` is optional: a captioner may know only some of
    them (a folder import knows presence and type; the mask captioner knows geometry).
    When ``tumor_present`` is false every tumour attribute must be unset.
    """

    modality: Literal["brain_mri"] = "brain_mri"
    tumor_present: bool
    tumor_type: TumorType | None = None
    hemisphere: Hemisphere | None = None
    lobe: Lobe | None = None
    size_mm: float | None = Field(default=None, gt=0, le=300)
    size_category: SizeCategory | None = None
    shape: Shape | None = None
    intensity: Intensity | None = None
    orientation: Orientation | None = None
    edema: bool | None = None
    mass_effect: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _derive_size_category(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("size_mm") is not None and data.get("size_category") is None:
            data = dict(data)
            data["size_category"] = size_category_for(float(data["size_mm"]))
        return data

    @model_validator(mode="after")
    def _check_consistency(self) -> BrainMRIFindings:
        if not self.tumor_present:
            set_attrs = [a for a in _TUMOR_ATTRIBUTES if getattr(self, a) not in (None, False)]
            if set_attrs:
                raise ValueError(f"tumor_present is false but tumour attributes are set: {set_attrs}")
        if self.size_mm is not None and self.size_category != size_category_for(self.size_mm):
            raise ValueError(
                f"size_category {self.size_category!r} contradicts size_mm={self.size_mm:g} "
                f"(expected {size_category_for(self.size_mm)!r})"
            )
        return self


GI_FRAME_LOCATIONS = (
    "upper-left", "upper-center", "upper-right",
    "center-left", "center", "center-right",
    "lower-left", "lower-center", "lower-right",
)
GIFrameLocation = Literal[
    "upper-left", "upper-center", "upper-right",
    "center-left", "center", "center-right",
    "lower-left", "lower-center", "lower-right",
]
GISizeRange = Literal["<5", "5-10", "11-20", ">20"]
GI_SIZE_RANGES: tuple[str, ...] = GISizeRange.__args__  # type: ignore[attr-defined]


class GIEndoscopyFindings(_Findings):
    """Findings of a GI endoscopy frame (the ImageCLEFmed MEDVQA-GI attributes).

    ``size_ranges_mm`` lists the size classes of the polyps present (ImageCLEF prompts
    such as "polyps of size 5-10mm and 11-20mm"); ``locations`` the regions of the frame
    that contain an abnormality.
    """

    modality: Literal["gi_endoscopy"] = "gi_endoscopy"
    procedure: Literal["colonoscopy", "gastroscopy"] | None = None
    polyp_count: int | None = Field(default=None, ge=0, le=50)
    size_ranges_mm: tuple[GISizeRange, ...] = ()
    locations: tuple[GIFrameLocation, ...] = ()
    instrument: str | None = None

    @model_validator(mode="after")
    def _check_consistency(self) -> GIEndoscopyFindings:
        if self.polyp_count == 0 and self.size_ranges_mm:
            raise ValueError("polyp_count is 0 but size_ranges_mm is set")
        return self


class GenericFindings(_Findings):
    """Findings of any other modality: a label, free text and named attributes."""

    modality: Literal["generic"] = "generic"
    label: str | None = None
    abnormal: bool | None = None
    attributes: dict[str, str] = Field(default_factory=dict)


Findings = Annotated[
    Union[BrainMRIFindings, GIEndoscopyFindings, GenericFindings],  # noqa: UP007
    Field(discriminator="modality"),
]
_FINDINGS_ADAPTER: TypeAdapter[Any] = TypeAdapter(Findings)

MODALITIES: dict[str, type[_Findings]] = {
    "brain_mri": BrainMRIFindings,
    "gi_endoscopy": GIEndoscopyFindings,
    "generic": GenericFindings,
}


def findings_from_dict(data: dict[str, Any]) -> BrainMRIFindings | GIEndoscopyFindings | GenericFindings:
    """Validate a findings dict; its ``modality`` field selects the schema.

    Raises:
        pydantic.ValidationError: naming the offending field.
    """
    if isinstance(data, dict) and "modality" not in data:
        raise ValueError(f"findings need a 'modality' field, one of {sorted(MODALITIES)}")
    return _FINDINGS_ADAPTER.validate_python(data)
