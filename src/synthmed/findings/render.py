"""Findings -> prompt text.

One renderer per modality writes the structured prompt style of seed 000, e.g.::

    Axial T1 contrast-enhanced MRI. A large irregular ring-enhancing tumour in the left
    frontal lobe, oriented obliquely, with surrounding edema and mass effect.

:func:`synthmed.findings.parse.parse_text` reads every sentence this module writes back
into the same findings (tested as a round trip).
"""

from __future__ import annotations

from synthmed.findings.schema import BrainMRIFindings, GenericFindings, GIEndoscopyFindings

BRAIN_MRI_HEADER = "Axial T1 contrast-enhanced MRI."
_ORIENTATION_ADVERB = {"horizontal": "horizontally", "vertical": "vertically", "oblique": "obliquely"}


def render_text(
    findings: BrainMRIFindings | GIEndoscopyFindings | GenericFindings,
    *,
    include_mm: bool = False,
    header: str | None = None,
) -> str:
    """Render findings as a prompt.

    Args:
        findings: The findings to describe.
        include_mm: Also state the measured diameter, e.g. "large (45 mm)".
        header: Replace the modality sentence (e.g. "Axial FLAIR MRI.").

    Returns:
        The prompt text, one or two sentences.
    """
    if isinstance(findings, BrainMRIFindings):
        return _render_brain(findings, include_mm=include_mm, header=header or BRAIN_MRI_HEADER)
    if isinstance(findings, GIEndoscopyFindings):
        return _render_gi(findings, header=header)
    if isinstance(findings, GenericFindings):
        return _render_generic(findings, header=header)
    raise TypeError(f"cannot render findings of type {type(findings).__name__}")


def _render_brain(f: BrainMRIFindings, *, include_mm: bool, header: str) -> str:
    if not f.tumor_present:
        return f"{header} No tumour is visible."
    words: list[str] = []
    if f.size_category:
        size = f.size_category
        if include_mm and f.size_mm is not None:
            size += f" ({f.size_mm:.0f} mm)"
        words.append(size)
    elif include_mm and f.size_mm is not None:
        words.append(f"{f.size_mm:.0f} mm")
    if f.shape:
        words.append(f.shape)
    if f.intensity:
        words.append(f.intensity)
    words.append(f.tumor_type or "tumour")
    article = "An" if words[0][0] in "aeiou" else "A"
    sentence = f"{article} {' '.join(words)}"
    if f.hemisphere and f.lobe:
        sentence += f" in the {f.hemisphere} {f.lobe} lobe"
    elif f.hemisphere:
        sentence += f" in the {f.hemisphere} hemisphere"
    elif f.lobe:
        sentence += f" in the {f.lobe} lobe"
    if f.orientation:
        sentence += f", oriented {_ORIENTATION_ADVERB[f.orientation]}"
    clause = _edema_clause(f.edema, f.mass_effect)
    if clause:
        sentence += f", {clause}"
    return f"{header} {sentence}."


def _edema_clause(edema: bool | None, mass_effect: bool | None) -> str:
    if edema is None and mass_effect is None:
        return ""
    if edema is False and mass_effect is False:
        return "with no edema or mass effect"
    parts_with, parts_without = [], []
    if edema is not None:
        (parts_with if edema else parts_without).append("surrounding edema" if edema else "edema")
    if mass_effect is not None:
        (parts_with if mass_effect else parts_without).append("mass effect")
    if parts_with and parts_without:
        return f"with {parts_with[0]} and no {parts_without[0]}"
    if parts_with:
        return "with " + " and ".join(parts_with)
    return "with no " + parts_without[0]


def _render_gi(f: GIEndoscopyFindings, *, header: str | None) -> str:
    procedure = (f.procedure or "endoscopy").capitalize()
    text = header or f"{procedure} image"
    if f.polyp_count == 0:
        text += " with no polyps"
    else:
        if f.polyp_count is not None:
            noun = "polyp" if f.polyp_count == 1 else "polyps"
            text += f" with {f.polyp_count} {noun}"
        elif f.size_ranges_mm or f.locations:
            text += " with polyps"
        if f.size_ranges_mm:
            text += " of size " + " and ".join(f"{r}mm" for r in f.size_ranges_mm)
        if f.locations:
            text += " located in the " + ", ".join(f.locations)
    if f.instrument:
        text += f", with a {f.instrument} visible"
    return text + "."


def _render_generic(f: GenericFindings, *, header: str | None) -> str:
    parts = [header.rstrip(".")] if header else []
    if f.label:
        parts.append(f.label)
    if f.abnormal is not None:
        parts.append("abnormal" if f.abnormal else "normal")
    parts.extend(f"{k}: {v}" for k, v in sorted(f.attributes.items()))
    return ". ".join(parts) + "." if parts else ""
