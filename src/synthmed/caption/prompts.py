"""Medical prompt templates for VLM captioners, and the validation of their replies.

Each modality has a versioned template that asks for the findings schema as one JSON
object, with a short definition of every attribute (and, for the brain, the radiological
left/right convention). The version is part of the reply cache key: change a template's
wording and bump its version, and cached replies to the old wording are no longer used.

:func:`findings_from_reply` turns a reply into validated findings or raises
:class:`ReplyError` saying what is wrong — a missing ``tumor_present``, a value outside the
schema, a key the schema does not have, contradictory attributes. It never fills a gap
with a default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from synthmed.findings.schema import (
    GI_FRAME_LOCATIONS,
    GI_SIZE_RANGES,
    HEMISPHERES,
    INTENSITIES,
    LOBES,
    ORIENTATIONS,
    SHAPES,
    SIZE_CATEGORIES,
    SIZE_CATEGORY_BOUNDS_MM,
    TUMOR_TYPES,
    BrainMRIFindings,
    GenericFindings,
    GIEndoscopyFindings,
    findings_from_dict,
)
from synthmed.llm.replies import ReplyFormatError, extract_json_object
from synthmed.utils.configs import error_text

#: Location parts pydantic adds for the members of a findings union.
_UNION_TAGS = ("BrainMRI", "GIEndo", "Generic", "brain_mri", "gi_", "generic")

AnyFindings = BrainMRIFindings | GIEndoscopyFindings | GenericFindings


class ReplyError(ValueError):
    """A reply that cannot be turned into valid findings (the message says why)."""


@dataclass(frozen=True)
class PromptTemplate:
    """A versioned captioning prompt for one modality.

    Attributes:
        modality: "brain_mri", "gi_endoscopy" or "generic".
        version: Bumped whenever the wording changes (part of the cache key).
        system: The system message.
        user: The user message sent with the image.
        schema: JSON schema of the reply (sent as structured output when supported).
    """

    modality: str
    version: str
    system: str
    user: str
    schema: dict[str, Any]

    @property
    def id(self) -> str:
        """``<modality>-<version>``, e.g. ``brain_mri-v1``."""
        return f"{self.modality}-{self.version}"


def _nullable_enum(values: tuple[str, ...]) -> dict[str, Any]:
    return {"type": ["string", "null"], "enum": [*values, None]}


_BOOL_OR_NULL = {"type": ["boolean", "null"]}

BRAIN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "tumor_present": {"type": "boolean"},
        "tumor_type": _nullable_enum(TUMOR_TYPES),
        "hemisphere": _nullable_enum(HEMISPHERES),
        "lobe": _nullable_enum(LOBES),
        "size_mm": {"type": ["number", "null"]},
        "size_category": _nullable_enum(SIZE_CATEGORIES),
        "shape": _nullable_enum(SHAPES),
        "intensity": _nullable_enum(INTENSITIES),
        "orientation": _nullable_enum(ORIENTATIONS),
        "edema": _BOOL_OR_NULL,
        "mass_effect": _BOOL_OR_NULL,
    },
    "required": ["tumor_present", "tumor_type", "hemisphere", "lobe", "size_mm", "size_category", "shape",
                 "intensity", "orientation", "edema", "mass_effect"],
    "additionalProperties": False,
}

GI_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "procedure": _nullable_enum(("colonoscopy", "gastroscopy")),
        "polyp_count": {"type": ["integer", "null"], "minimum": 0},
        "size_ranges_mm": {"type": "array", "items": {"type": "string", "enum": list(GI_SIZE_RANGES)}},
        "locations": {"type": "array", "items": {"type": "string", "enum": list(GI_FRAME_LOCATIONS)}},
        "instrument": {"type": ["string", "null"]},
    },
    "required": ["procedure", "polyp_count", "size_ranges_mm", "locations", "instrument"],
    "additionalProperties": False,
}

GENERIC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "label": {"type": ["string", "null"]},
        "abnormal": _BOOL_OR_NULL,
        "attributes": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["label", "abnormal", "attributes"],
    "additionalProperties": False,
}

_SYSTEM = ("You are a careful radiologist. You describe only what is visible in the image and answer with one "
           "JSON object and nothing else.")

_BRAIN_USER = f"""This is an axial brain MRI slice (usually contrast-enhanced T1), shown in the radiological convention:
the patient's LEFT is on the RIGHT side of the image, and the top of the image is anterior.

Report the findings as one JSON object with exactly these keys (use null for anything you cannot tell):
- "tumor_present": true or false. Is there a tumour (mass lesion)?
- "tumor_type": one of {list(TUMOR_TYPES)} or null if unsure.
- "hemisphere": the PATIENT's side of the tumour, "left" or "right" (remember: image right = patient left).
- "lobe": the lobe region the tumour centre lies in: {list(LOBES)}.
- "size_mm": the largest diameter in millimetres, or null.
- "size_category": "small" (< {SIZE_CATEGORY_BOUNDS_MM['small']:g} mm), "medium" \
({SIZE_CATEGORY_BOUNDS_MM['small']:g}-{SIZE_CATEGORY_BOUNDS_MM['medium']:g} mm) or "large" \
(>= {SIZE_CATEGORY_BOUNDS_MM['medium']:g} mm); it must agree with size_mm.
- "shape": "round", "oval" (elongated, smooth), "lobulated" (a few broad bulges) or "irregular" (jagged, \
infiltrative).
- "intensity": signal relative to the surrounding brain: "hyperintense" (brighter), "hypointense" (darker), \
"isointense" (similar) or "ring-enhancing" (bright rim around a darker core).
- "orientation": the long axis of the tumour in the image: "horizontal", "vertical" or "oblique"; null if round.
- "edema": true if a darker band of swollen tissue surrounds the tumour, else false.
- "mass_effect": true if the tumour pushes the midline or ventricles aside, else false.
If there is no tumour, set "tumor_present" to false and every other key to null.
Answer with the JSON object only."""

_GI_USER = f"""This is a frame from a gastrointestinal endoscopy (colonoscopy or gastroscopy).

Report the findings as one JSON object with exactly these keys:
- "procedure": "colonoscopy", "gastroscopy" or null if unsure.
- "polyp_count": the number of polyps visible (0 if none), or null if you cannot tell.
- "size_ranges_mm": the size classes of the visible polyps, a list drawn from {list(GI_SIZE_RANGES)} (mm).
- "locations": the regions of the frame that contain a polyp or abnormality, a list drawn from \
{list(GI_FRAME_LOCATIONS)}; left and right are as seen in the image.
- "instrument": the instrument visible (e.g. "biopsy forceps", "metal clip", "tube", "snare"), or null.
Answer with the JSON object only."""

_GENERIC_USER = """This is a medical image.

Report the findings as one JSON object with exactly these keys:
- "label": a short name of the main finding or condition (a few words), or null.
- "abnormal": true if the image shows an abnormality, false if it looks normal, null if you cannot tell.
- "attributes": an object of further short attribute names to short string values (may be empty).
Answer with the JSON object only."""

TEMPLATES: dict[str, PromptTemplate] = {
    "brain_mri": PromptTemplate("brain_mri", "v1", _SYSTEM, _BRAIN_USER, BRAIN_SCHEMA),
    "gi_endoscopy": PromptTemplate("gi_endoscopy", "v1", _SYSTEM, _GI_USER, GI_SCHEMA),
    "generic": PromptTemplate("generic", "v1", _SYSTEM, _GENERIC_USER, GENERIC_SCHEMA),
}


def template_for(modality: str) -> PromptTemplate:
    """The current template of ``modality``.

    Raises:
        ValueError: unknown modality (lists the known ones).
    """
    if modality not in TEMPLATES:
        raise ValueError(f"no captioning prompt for modality {modality!r}; known: {', '.join(TEMPLATES)}")
    return TEMPLATES[modality]


def repair_message(error: str) -> str:
    """The follow-up user message sent after an invalid reply."""
    return (f"Your reply could not be used: {error}. Answer again with only one JSON object that has exactly the "
            "keys listed above and allowed values.")


def _normalise(value: Any) -> Any:
    if isinstance(value, str):
        v = value.strip().lower()
        return None if v in ("", "null", "none", "n/a", "unknown") else v
    return value


def findings_from_reply(text: str, modality: str) -> AnyFindings:
    """Validate a VLM reply into findings of ``modality``.

    Strings are lower-cased and trimmed; ``null`` values are dropped. Everything else must
    already match the schema.

    Raises:
        ReplyError: no JSON object, a key outside the schema, a missing required key, a
            value outside the schema, or contradictory attributes.
    """
    template = template_for(modality)
    try:
        obj = extract_json_object(text)
    except ReplyFormatError as err:
        raise ReplyError(str(err)) from err
    allowed = set(template.schema["properties"])
    unknown = sorted(set(obj) - allowed - {"modality"})
    if unknown:
        raise ReplyError(f"keys outside the findings schema: {unknown}")
    if modality == "brain_mri" and not isinstance(obj.get("tumor_present"), bool):
        raise ReplyError(f"'tumor_present' must be true or false, got {obj.get('tumor_present')!r}")
    data: dict[str, Any] = {"modality": modality}
    for key, value in obj.items():
        if key == "modality":
            continue
        if isinstance(value, list):
            value = [_normalise(v) for v in value if _normalise(v) is not None]
        elif key != "attributes":
            value = _normalise(value)
        if value is not None:
            data[key] = value
    if modality == "brain_mri" and data.get("tumor_present") is False:
        stated = [k for k in data if k not in ("modality", "tumor_present") and data[k] is not False]
        if stated:
            raise ReplyError(f"tumor_present is false but tumour attributes are given: {stated}")
        data = {"modality": modality, "tumor_present": False}
    try:
        return findings_from_dict(data)
    except (ValidationError, ValueError) as err:
        raise ReplyError(_validation_message(err)) from err


def _validation_message(err: Exception) -> str:
    return "invalid findings: " + error_text(err, subject="findings", hide=_UNION_TAGS)
