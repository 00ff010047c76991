"""VLM explanations of localisations in seed 003's three prompting modes, scored against ground truth."""

from synthmed.explain.backends import APIBackend, HFBackend, VLMBackend, VLMRequest, get_backend
from synthmed.explain.prompts import MODES, PROMPT_VERSION, build_prompt, parse_reply
from synthmed.explain.run import ExplainConfig, explain_dataset

__all__ = ["MODES", "PROMPT_VERSION", "APIBackend", "ExplainConfig", "HFBackend", "VLMBackend", "VLMRequest",
           "build_prompt", "explain_dataset", "get_backend", "parse_reply"]
