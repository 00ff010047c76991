"""The three prompting modes of seed 003 and the structured reply they ask for.

* ``zero-shot`` — the raw scan; the model is asked whether there is a tumour and where.
* ``instruction`` — the scan with the localiser's region drawn in red, told that the red
  region marks the tumour, with the localiser's findings as text.
* ``chain-of-thought`` — the same overlay and findings, with step-by-step reasoning asked
  for before the answer.

Every mode asks for one JSON object ``{"findings": {...}, "explanation": "..."}`` whose
``findings`` follow the brain-MRI findings schema, so replies are scored attribute by
attribute against ground truth. :data:`PROMPT_VERSION` is recorded with every result;
bump it whenever the wording changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from synthmed.caption.prompts import ReplyError, findings_from_reply
from synthmed.findings.schema import HEMISPHERES, INTENSITIES, LOBES, ORIENTATIONS, SHAPES, BrainMRIFindings
from synthmed.llm.replies import ReplyFormatError, extract_json_object

PROMPT_VERSION = "explain-v1"
MODES: tuple[str, ...] = ("zero-shot", "instruction", "chain-of-thought")

_CONVENTION = ("The image is in the radiological convention: the patient's LEFT is on the RIGHT side of the image "
               "and the patient's RIGHT is on the LEFT side.")
_SCHEMA_TEXT = f"""Answer with one JSON object with exactly two keys:
- "findings": an object with keys "tumor_present" (true/false), "hemisphere" (one of {list(HEMISPHERES)}, the \
patient's side), "lobe" (one of {list(LOBES)}), "size_mm" (largest diameter in mm, a number), "shape" (one of \
{list(SHAPES)}), "intensity" (one of {list(INTENSITIES)}), "orientation" (one of {list(ORIENTATIONS)}), "edema" \
(true/false); use null for what you cannot tell, and only "tumor_present": false when there is no tumour;
- "explanation": two or three sentences for a clinician explaining what the image shows and why."""


@dataclass(frozen=True)
class ExplainPrompt:
    """One prompt: its mode, whether it shows the overlay, and the text."""

    mode: str
    uses_overlay: bool
    text: str


def build_prompt(mode: str, localizer_text: str | None = None) -> ExplainPrompt:
    """The prompt of ``mode``; ``localizer_text`` (the localiser's findings rendered as text) for the other modes.

    Raises:
        ValueError: unknown mode, or a mode that needs the localiser's findings without them.
    """
    if mode not in MODES:
        raise ValueError(f"unknown explanation mode {mode!r}; choose from {', '.join(MODES)}")
    if mode == "zero-shot":
        text = (f"This is an axial brain MRI slice. {_CONVENTION}\nIs there a brain tumour? If so, where is it "
                f"and what does it look like?\n{_SCHEMA_TEXT}")
        return ExplainPrompt(mode, False, text)
    if localizer_text is None:
        raise ValueError(f"mode {mode!r} needs the localiser's findings")
    base = (f"This is an axial brain MRI slice. {_CONVENTION}\nThe red region marks the tumour found by a "
            f"localisation model. The localisation model reports: {localizer_text}")
    if mode == "instruction":
        text = f"{base}\nUsing the red region, state the tumour's location and details.\n{_SCHEMA_TEXT}"
    else:
        text = (f"{base}\nThink step by step: (1) find the red region; (2) decide which side of the image and which "
                "side of the patient it is on; (3) decide the lobe from its position; (4) judge its size, shape and "
                "signal compared with the surrounding brain; (5) look for a dark rim of edema. Write your reasoning, "
                f"then end with the JSON object.\n{_SCHEMA_TEXT}")
    return ExplainPrompt(mode, True, text)


@dataclass
class ExplainReply:
    """A parsed reply: findings (None when invalid), the explanation, and what went wrong."""

    findings: BrainMRIFindings | None
    explanation: str | None
    error: str | None = None


def parse_reply(text: str) -> ExplainReply:
    """Validate a reply into findings and an explanation; never fills a gap with a default."""
    try:
        obj: dict[str, Any] = extract_json_object(text)
    except ReplyFormatError as err:
        return ExplainReply(None, None, f"no JSON object in the reply: {err}")
    explanation = obj.get("explanation")
    explanation = str(explanation).strip() if explanation else None
    raw = obj.get("findings")
    if not isinstance(raw, dict):
        return ExplainReply(None, explanation, "the reply has no 'findings' object")
    import json

    try:
        findings = findings_from_reply(json.dumps(raw), "brain_mri")
    except ReplyError as err:
        return ExplainReply(None, explanation, f"invalid findings: {err}")
    return ExplainReply(findings, explanation)  # type: ignore[arg-type]
