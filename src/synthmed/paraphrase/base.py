"""The paraphraser contract, its registry, and the check that a paraphrase says the same thing.

A paraphraser turns captions into alternative wordings. Wording is free; meaning is not:
:func:`check_paraphrase` parses the paraphrase back into findings and accepts it only if
they equal the findings of the original caption (a paraphrase that moves the tumour to the
other hemisphere would be a silent label error in the training data).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from synthmed.findings.parse import FindingsParseError, parse_text
from synthmed.utils.registry import PrefixRegistry

#: Modalities whose captions the parser reads back into findings (others cannot be checked).
CHECKABLE_MODALITIES = ("brain_mri", "gi_endoscopy")


@dataclass(frozen=True)
class ParaphraseInput:
    """One caption to paraphrase.

    Attributes:
        key: A stable identifier (the dataset file name).
        text: The caption.
        modality: "brain_mri" or "gi_endoscopy".
    """

    key: str
    text: str
    modality: str = "brain_mri"


class Paraphraser(Protocol):
    """Captions -> candidate paraphrases (unchecked; the runner checks them)."""

    name: str

    def paraphrase(self, items: Sequence[ParaphraseInput], k: int) -> list[list[str] | Exception]:
        """Up to ``k`` candidates per caption, in order; an exception where a caption failed."""
        ...


def check_paraphrase(original: str, paraphrase: str, modality: str) -> str | None:
    """None if ``paraphrase`` states exactly the findings of ``original``, else the reason it does not.

    Raises:
        FindingsParseError: the *original* caption cannot be parsed (nothing to compare with).
    """
    reference = parse_text(original, modality)
    if not paraphrase.strip():
        return "empty"
    if " ".join(paraphrase.split()).lower() == " ".join(original.split()).lower():
        return "identical to the original"
    try:
        said = parse_text(paraphrase, modality)
    except FindingsParseError as err:
        return f"unparseable: {err}"
    if said == reference:
        return None
    diff = [name for name in type(reference).model_fields
            if getattr(said, name) != getattr(reference, name)]
    return "changes " + ", ".join(f"{n} ({getattr(reference, n)!r} -> {getattr(said, n)!r})" for n in diff)


_REGISTRY: PrefixRegistry[Paraphraser] = PrefixRegistry(
    "paraphraser", ("synthmed.paraphrase.llm", "synthmed.paraphrase.template"))


def register_paraphraser(prefix: str) -> Callable[[Callable[..., Paraphraser]], Callable[..., Paraphraser]]:
    """Register a paraphraser factory under a name (``template``) or a prefix (``hf``, ``api``)."""
    return _REGISTRY.register(prefix)


def paraphraser_names() -> list[str]:
    """Registered paraphraser names."""
    return _REGISTRY.names()


def get_paraphraser(name: str, **options: object) -> Paraphraser:
    """Build a paraphraser by name: ``template``, ``hf:<model>`` or ``api:<model>``.

    Raises:
        ConfigError: unknown name (the message lists the valid ones).
    """
    return _REGISTRY.build(name, **options)
