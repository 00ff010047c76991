"""Text -> findings.

The parser reads the prompts written by :mod:`synthmed.findings.render` and the common
wordings of radiology captions, paraphrases and VLM replies (synonyms, British/American
spelling, negations). It never invents an attribute: what the text does not say stays
unset, and text that does not say whether a tumour is present is an error.
"""

from __future__ import annotations

import re

from synthmed.errors import SynthmedError
from synthmed.findings.schema import (
    GI_FRAME_LOCATIONS,
    BrainMRIFindings,
    GenericFindings,
    GIEndoscopyFindings,
)


class FindingsParseError(SynthmedError):
    """The text does not state the findings the parser needs (or contradicts itself)."""


def _first(patterns: list[tuple[str, str]], text: str) -> str | None:
    """Return the value of the pattern that matches earliest in ``text``."""
    best: tuple[int, str] | None = None
    for pattern, value in patterns:
        m = re.search(pattern, text)
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), value)
    return best[1] if best else None


_NEGATED_TUMOUR = (
    r"\bno (?:evidence of (?:a |any )?)?(?:visible |focal |obvious )?(?:tumou?r|lesion|mass(?! effect)|neoplasm)s?\b"
    r"|\bwithout (?:a |any )?(?:tumou?r|lesion)|\b(?:tumou?r|lesion)[- ]free\b"
    r"|\bhealthy\b|\bnormal (?:brain|scan|study)\b"
    r"|\bnotumou?r\b"
)
_TUMOUR = r"\b(?:tumou?rs?|lesions?|mass(?! effect)|masses|neoplasms?|gliomas?|meningiomas?|adenomas?|metastas[ie]s)\b"
_TYPES = [(r"\bgliomas?\b", "glioma"), (r"\bmeningiomas?\b", "meningioma"), (r"\bpituitary\b", "pituitary")]
_LOBES = [(rf"\b{lobe}\b", lobe) for lobe in ("frontal", "parietal", "temporal", "occipital")]
_SIZES = [
    (r"\b(?:small|tiny|little)\b", "small"),
    (r"\b(?:medium|medium-sized|moderate(?:-sized)?|mid-sized|intermediate)\b", "medium"),
    (r"\b(?:large|big|huge|sizable|sizeable|extensive)\b", "large"),
]
_SHAPES = [
    (r"\b(?:round|rounded|circular|spherical)\b", "round"),
    (r"\b(?:oval|ovoid|elliptical|ellipsoid|elongated)\b", "oval"),
    (r"\b(?:lobulated|lobular|multilobulated)\b", "lobulated"),
    (r"\b(?:irregular|irregularly shaped|ill-defined|infiltrative)\b", "irregular"),
]
_INTENSITIES = [
    (r"\b(?:ring|rim)[- ]enhancing\b|\bperipheral(?:ly)? enhancing\b|\bnecrotic core\b", "ring-enhancing"),
    (r"\bhyper-?intense\b|\bbright\b|\bhomogeneously enhancing\b", "hyperintense"),
    (r"\bhypo-?intense\b|\bdark\b", "hypointense"),
    (r"\biso-?intense\b", "isointense"),
]
_ORIENTATIONS = [
    (r"\bhorizontal(?:ly)?\b|\bleft[- ]to[- ]right\b|\btransverse(?:ly)?\b", "horizontal"),
    (r"\bvertical(?:ly)?\b|\banteroposterior(?:ly)?\b|\bfront[- ]to[- ]back\b", "vertical"),
    (r"\boblique(?:ly)?\b|\bdiagonal(?:ly)?\b", "oblique"),
]
_HEMISPHERE = (
    r"\b(left|right)(?:[- ]sided)?\s+(?:cerebral\s+)?(?:hemisphere|side|frontal|parietal|temporal|occipital|lobe)\b"
)


def parse_text(text: str, modality: str = "brain_mri") -> BrainMRIFindings | GIEndoscopyFindings | GenericFindings:
    """Parse a caption or prompt into findings of ``modality``.

    Raises:
        FindingsParseError: the text does not say whether a lesion is present, or the
            attributes it states contradict each other.
    """
    if modality == "brain_mri":
        return parse_brain_mri(text)
    if modality == "gi_endoscopy":
        return parse_gi(text)
    if modality == "generic":
        return GenericFindings(label=text.strip().rstrip(".") or None)
    raise ValueError(f"unknown modality {modality!r}; expected brain_mri, gi_endoscopy or generic")


def parse_brain_mri(text: str) -> BrainMRIFindings:
    """Parse brain MRI findings from free text (see :func:`parse_text`)."""
    t = " ".join(text.lower().split())
    if re.search(_NEGATED_TUMOUR, t):
        return BrainMRIFindings(tumor_present=False)
    if not re.search(_TUMOUR, t):
        raise FindingsParseError(f"the text does not say whether a tumour is present: {text!r}")
    values: dict[str, object] = {"tumor_present": True}
    values["tumor_type"] = _first(_TYPES, t)
    m = re.search(_HEMISPHERE, t)
    if m:
        values["hemisphere"] = m.group(1)
    else:
        sides = set(re.findall(r"\b(left|right)\b", t))
        if len(sides) == 1:
            values["hemisphere"] = sides.pop()
    values["lobe"] = _first(_LOBES, t)
    mm = re.search(r"(\d+(?:\.\d+)?)\s*(?:mm|millimet(?:er|re)s?)\b", t)
    if mm:
        values["size_mm"] = float(mm.group(1))
    values["size_category"] = _first(_SIZES, t)
    values["shape"] = _first(_SHAPES, t)
    values["intensity"] = _first(_INTENSITIES, t)
    values["orientation"] = _first(_ORIENTATIONS, t)
    values["edema"], values["mass_effect"] = _parse_edema_mass_effect(t)
    try:
        return BrainMRIFindings(**{k: v for k, v in values.items() if v is not None})
    except ValueError as err:
        raise FindingsParseError(f"contradictory findings in {text!r}: {err}") from err


def _parse_edema_mass_effect(t: str) -> tuple[bool | None, bool | None]:
    edema = mass = None
    if re.search(r"\bno (?:surrounding |perilesional |peritumou?ral )?o?edema (?:or|nor) mass effect\b", t):
        return False, False
    if re.search(r"\b(?:no|without)(?: any)? (?:surrounding |perilesional |peritumou?ral )?o?edema\b", t):
        edema = False
    elif re.search(r"\bo?edema\b|\boedematous\b|\bedematous\b", t):
        edema = True
    if re.search(r"\b(?:no|without)(?: any)? (?:significant )?mass effect\b", t):
        mass = False
    elif re.search(r"\bmass effect\b|\bmidline shift\b", t):
        mass = True
    return edema, mass


def parse_gi(text: str) -> GIEndoscopyFindings:
    """Parse GI endoscopy findings (ImageCLEFmed MEDVQA-GI prompt style)."""
    t = " ".join(text.lower().split())
    values: dict[str, object] = {}
    if "colonoscopy" in t:
        values["procedure"] = "colonoscopy"
    elif "gastroscopy" in t:
        values["procedure"] = "gastroscopy"
    if re.search(r"\bno polyps?\b|\bwithout (?:any )?polyps?\b", t):
        values["polyp_count"] = 0
    else:
        m = re.search(r"\b(\d+|one|two|three|four|five|six|seven|eight|nine|ten) polyps?\b", t)
        if m:
            words = "one two three four five six seven eight nine ten".split()
            g = m.group(1)
            values["polyp_count"] = int(g) if g.isdigit() else words.index(g) + 1
    ranges = re.findall(r"(<\s*5|5\s*-\s*10|11\s*-\s*20|>\s*20)\s*mm", t)
    values["size_ranges_mm"] = tuple(dict.fromkeys(r.replace(" ", "") for r in ranges))
    locations = []
    for loc in GI_FRAME_LOCATIONS:
        variants = {loc, loc.replace("-", " "), loc.replace("center", "centre"), loc.replace("-", "")}
        if any(re.search(rf"\b{re.escape(v)}\b", t) for v in variants):
            locations.append(loc)
    # "center" alone also matches inside "center-right"; keep it only if it stands alone.
    if "center" in locations and not re.search(r"\bcent(?:er|re)\b(?![- ]?(?:left|right))", t):
        locations.remove("center")
    values["locations"] = tuple(locations)
    m = re.search(r"\b(biopsy forceps|forceps|metal clip|clip|tube|snare|instrument)s?\b", t)
    if m:
        values["instrument"] = m.group(1)
    return GIEndoscopyFindings(**values)
