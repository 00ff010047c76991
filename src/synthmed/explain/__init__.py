"""VLM explanations of localisations in seed 003's three prompting modes, scored against ground truth.

A prompt-and-parse layer over a :class:`synthmed.llm.chat.ChatModel` (``hf:`` or ``api:``).
"""

from synthmed.explain.prompts import MODES, PROMPT_VERSION, build_prompt, parse_reply
from synthmed.explain.run import ExplainConfig, explain_dataset

__all__ = ["MODES", "PROMPT_VERSION", "ExplainConfig", "build_prompt", "explain_dataset", "parse_reply"]
