"""Paraphrasers: more wordings of the same findings, each checked by parsing it back."""

from synthmed.paraphrase.base import (
    ParaphraseInput,
    Paraphraser,
    check_paraphrase,
    get_paraphraser,
    paraphraser_names,
)
from synthmed.paraphrase.runner import ParaphraseSummary, paraphrase_dataset

__all__ = [
    "ParaphraseInput",
    "ParaphraseSummary",
    "Paraphraser",
    "check_paraphrase",
    "get_paraphraser",
    "paraphrase_dataset",
    "paraphraser_names",
]
