"""Prompt ensembles for normal and abnormal text (seed 003: templates x state words, averaged).

The seed generated 20 prompts per class and averaged their text features into
``Ft`` (2 x C). Here the prompts are every template filled with every state phrase of the
class: 4 templates x 5 states = 20 prompts per class.
"""

from __future__ import annotations

TEMPLATES: tuple[str, ...] = (
    "Axial T1 contrast-enhanced MRI showing {}.",
    "A brain MRI scan with {}.",
    "An MRI slice of the brain with {}.",
    "This scan shows {}.",
)
NORMAL_STATES: tuple[str, ...] = ("no tumour", "a normal brain", "a healthy brain", "no lesion", "no abnormality")
ABNORMAL_STATES: tuple[str, ...] = ("a tumour", "a brain tumour", "a lesion", "a mass", "an abnormality")


def prompt_ensemble(templates: tuple[str, ...] | list[str] = TEMPLATES,
                    normal: tuple[str, ...] | list[str] = NORMAL_STATES,
                    abnormal: tuple[str, ...] | list[str] = ABNORMAL_STATES) -> tuple[list[str], list[str]]:
    """(normal prompts, abnormal prompts): every template filled with every state phrase.

    Raises:
        ValueError: a template has no ``{}`` slot, or a list is empty.
    """
    if not templates or not normal or not abnormal:
        raise ValueError("templates, normal and abnormal state lists must all be non-empty")
    bad = [t for t in templates if "{}" not in t]
    if bad:
        raise ValueError(f"every template needs one '{{}}' slot for the state phrase, got {bad[0]!r}")
    return ([t.format(s) for t in templates for s in normal], [t.format(s) for t in templates for s in abnormal])
