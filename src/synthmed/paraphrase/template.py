"""The ``template`` paraphraser: offline, deterministic rewordings built from the findings.

The caption is parsed into findings, and new sentences are assembled from them with
varied vocabulary (synonyms for size, shape, signal, the lesion noun, the scan header),
varied sentence order (attributes first, location first, a structured "key: value" list,
several sentences) and two registers (clinical and plain). Choices are drawn from a
random generator seeded by ``seed``, the caption and the row's key, so a rerun gives the
same paraphrases, while rows that share a caption get different ones. Only attributes the
caption states are written, and the runner still parses every candidate back and drops any
that changes the findings.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence

from synthmed.errors import ConfigError
from synthmed.findings.parse import FindingsParseError, parse_text
from synthmed.findings.schema import BrainMRIFindings, GIEndoscopyFindings
from synthmed.paraphrase.base import ParaphraseInput, register_paraphraser
from synthmed.utils.seeding import derive_seed

HEADERS = ("Axial T1 contrast-enhanced MRI.", "Contrast-enhanced axial T1-weighted MRI.",
           "Axial post-contrast T1 MRI slice.", "T1-weighted MRI with contrast, axial view.",
           "Brain MRI, axial T1 with contrast.", "Axial contrast-enhanced T1 image of the brain.", "")
NOUNS = ("tumour", "tumor", "lesion", "mass", "neoplasm")
SIZES = {"small": ("small", "small-sized"), "medium": ("medium-sized", "moderate-sized", "mid-sized", "medium"),
         "large": ("large", "big", "sizeable", "extensive")}
SHAPES = {"round": ("round", "rounded", "circular", "spherical"), "oval": ("oval", "ovoid", "elliptical"),
          "lobulated": ("lobulated", "lobular", "multilobulated"), "irregular": ("irregular", "irregularly shaped")}
INTENSITY = {"ring-enhancing": ("ring-enhancing", "rim-enhancing", "peripherally enhancing"),
             "hyperintense": ("hyperintense",), "hypointense": ("hypointense",), "isointense": ("isointense",)}
INTENSITY_PLAIN = {"ring-enhancing": "ring-enhancing", "hyperintense": "bright",
                   "hypointense": "dark", "isointense": "isointense"}
ORIENT = {"horizontal": ("horizontally", "transversely"), "vertical": ("vertically", "anteroposteriorly"),
          "oblique": ("obliquely", "diagonally")}
NO_TUMOUR = ("No tumour is visible.", "No evidence of a tumour.", "No focal lesion is seen.",
             "Normal brain without a tumour.", "No mass is seen.", "The brain is tumour-free.",
             "No tumor is visible.", "No lesion is present.")


def _location(f: BrainMRIFindings, rng: random.Random) -> str:
    h, lobe = f.hemisphere, f.lobe
    if h and lobe:
        return rng.choice((f"the {h} {lobe} lobe", f"the {lobe} lobe of the {h} hemisphere",
                           f"the {h} {lobe} region", f"the {lobe} lobe of the {h} cerebral hemisphere"))
    if h:
        return rng.choice((f"the {h} hemisphere", f"the {h} cerebral hemisphere", f"the {h} side of the brain"))
    if lobe:
        return rng.choice((f"the {lobe} lobe", f"the {lobe} region"))
    return ""


def _edema_sentences(f: BrainMRIFindings, rng: random.Random) -> tuple[str, str]:
    """(a trailing clause, the same as a separate sentence); empty when neither is stated."""
    e, m = f.edema, f.mass_effect
    if e is None and m is None:
        return "", ""
    if e is False and m is False:
        return (rng.choice(("with no edema or mass effect", "with no oedema or mass effect")),
                rng.choice(("There is no edema or mass effect.", "There is no oedema or mass effect.")))
    e_pos = ("surrounding edema", "perilesional oedema", "peritumoral edema", "surrounding oedema")
    e_neg = ("no surrounding edema", "no oedema", "no perilesional edema")
    m_pos = ("mass effect",)
    m_neg = ("no mass effect", "no significant mass effect")
    parts = []
    if e is not None:
        parts.append(rng.choice(e_pos if e else e_neg))
    if m is not None:
        parts.append(rng.choice(m_pos if m else m_neg))
    clause = "with " + " and ".join(parts)
    sentence = "There is " + " and ".join(parts) + "."
    return clause, sentence[0].upper() + sentence[1:]


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def brain_variant(f: BrainMRIFindings, rng: random.Random) -> str:
    """One rewording of brain-MRI findings."""
    header = rng.choice(HEADERS)
    if not f.tumor_present:
        return f"{header} {rng.choice(NO_TUMOUR)}".strip()
    noun = f.tumor_type or rng.choice(NOUNS)
    size = rng.choice(SIZES[f.size_category]) if f.size_category else ""
    shape = rng.choice(SHAPES[f.shape]) if f.shape else ""
    plain = rng.random() < 0.3
    intensity = ""
    if f.intensity:
        intensity = INTENSITY_PLAIN[f.intensity] if plain else rng.choice(INTENSITY[f.intensity])
    loc = _location(f, rng)
    orient = rng.choice(ORIENT[f.orientation]) if f.orientation else ""
    orient_clause = rng.choice((f"oriented {orient}", f"lying {orient}", f"running {orient}")) if orient else ""
    clause, edema_sentence = _edema_sentences(f, rng)
    phrase = " ".join([a for a in (size, shape, intensity) if a] + [noun])
    style = rng.randrange(4)
    if style == 0:  # attributes first, one sentence
        body = f"{_article(phrase)} {phrase}" + (f" in {loc}" if loc else "")
        body += "".join(f", {c}" for c in (orient_clause, clause) if c)
        body = body[0].upper() + body[1:] + "."
    elif style == 1:  # location first
        lead = f"In {loc}, there is" if loc else "There is"
        body = f"{lead} {_article(phrase)} {phrase}" + (f", {orient_clause}" if orient_clause else "") + "."
        body += f" {edema_sentence}" if edema_sentence else ""
    elif style == 2:  # plain register
        verb = rng.choice(("The scan shows", "The image shows", "We see", "Visible is"))
        body = f"{verb} {_article(phrase)} {phrase}" + (f" in {loc}" if loc else "") + "."
        if orient:
            body += f" It is oriented {orient}."
        body += f" {edema_sentence}" if edema_sentence else ""
    else:  # structured report
        items = [f"{noun} in {loc}" if loc else noun]
        if size:
            items.append(f"size {size}")
        if shape:
            items.append(f"shape {shape}")
        if intensity:
            items.append(f"signal {intensity}")
        if orient:
            items.append(f"oriented {orient}")
        if clause:
            items.append(clause.removeprefix("with "))
        body = "Findings: " + "; ".join(items) + "."
    return f"{header} {body}".strip()


def gi_variant(f: GIEndoscopyFindings, rng: random.Random) -> str:
    """One rewording of GI endoscopy findings."""
    procedure = f.procedure or "endoscopy"
    lead = rng.choice((f"{procedure.capitalize()} image", f"{procedure.capitalize()} frame",
                       f"An image from {_article(procedure)} {procedure}",
                       f"{_article(procedure).capitalize()} {procedure} view"))
    words = "zero one two three four five six seven eight nine ten".split()
    parts = []
    if f.polyp_count == 0:
        parts.append(rng.choice(("with no polyps", "without any polyps", "showing no polyp")))
    else:
        if f.polyp_count is not None:
            n = f.polyp_count
            count = words[n] if n < len(words) and rng.random() < 0.5 else str(n)
            parts.append(f"{rng.choice(('with', 'showing'))} {count} {'polyp' if n == 1 else 'polyps'}")
        elif f.size_ranges_mm or f.locations:
            parts.append("with polyps")
        if f.size_ranges_mm:
            sep = rng.choice(("mm", " mm"))
            parts.append(rng.choice(("of size ", "measuring ")) + " and ".join(f"{r}{sep}" for r in f.size_ranges_mm))
        if f.locations:
            locs = [loc.replace("center", "centre") if rng.random() < 0.3 else loc for loc in f.locations]
            parts.append(rng.choice(("located in the ", "in the ")) + ", ".join(locs))
    text = f"{lead} " + " ".join(parts) if parts else lead
    if f.instrument:
        text += rng.choice((f", with a {f.instrument} visible", f". A {f.instrument} is visible"))
    return text.strip() + "."


class TemplateParaphraser:
    """Deterministic rewordings of captions (see module docstring).

    Args:
        seed: Mixed with each caption's own hash; the same (caption, seed) gives the same paraphrases.
        tries_per_paraphrase: Draws allowed per requested paraphrase to find distinct ones.
    """

    name = "template"

    def __init__(self, seed: int = 0, tries_per_paraphrase: int = 20):
        self.seed = seed
        self.tries = tries_per_paraphrase

    def paraphrase(self, items: Sequence[ParaphraseInput], k: int) -> list[list[str] | Exception]:
        return [self._one(item, k) for item in items]

    def _one(self, item: ParaphraseInput, k: int) -> list[str] | Exception:
        try:
            findings = parse_text(item.text, item.modality)
        except (FindingsParseError, ValueError) as err:
            return err
        if not isinstance(findings, (BrainMRIFindings, GIEndoscopyFindings)):
            return ValueError(f"the template paraphraser has no wordings for modality {item.modality!r}")
        rng = random.Random(derive_seed(self.seed, zlib.crc32(item.text.encode("utf-8")),
                                        zlib.crc32(item.key.encode("utf-8"))))
        make = brain_variant if isinstance(findings, BrainMRIFindings) else gi_variant
        seen = {" ".join(item.text.split()).lower()}
        out: list[str] = []
        for _ in range(k * self.tries):
            if len(out) >= k:
                break
            text = make(findings, rng)  # type: ignore[arg-type]
            norm = " ".join(text.split()).lower()
            if norm not in seen:
                seen.add(norm)
                out.append(text)
        return out


@register_paraphraser("template")
def _make_template(**options: object) -> TemplateParaphraser:
    if "model" in options:
        raise ConfigError("the template paraphraser takes no model (use 'template', not 'template:...')")
    return TemplateParaphraser(**options)  # type: ignore[arg-type]
