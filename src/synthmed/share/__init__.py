"""Sharing trained artifacts: model cards (:mod:`synthmed.share.card`) and Hub uploads (:mod:`synthmed.share.push`)."""

from synthmed.share.card import card_text, write_model_card
from synthmed.share.push import files_to_push, push

__all__ = ["card_text", "files_to_push", "push", "write_model_card"]
