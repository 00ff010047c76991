"""Generate labelled synthetic datasets from any diffusers text-to-image pipeline.

Entry point: :func:`generate` with a :class:`GenerateConfig`.
"""

from synthmed.generate.config import GenerateConfig
from synthmed.generate.prompts import PromptSpec, balanced_like, collect_prompts, findings_grid, parse_grid_spec
from synthmed.generate.run import generate, image_name, image_seed, merge
from synthmed.generate.schedulers import make_scheduler, scheduler_names

__all__ = [
    "GenerateConfig",
    "PromptSpec",
    "balanced_like",
    "collect_prompts",
    "findings_grid",
    "generate",
    "image_name",
    "image_seed",
    "make_scheduler",
    "merge",
    "parse_grid_spec",
    "scheduler_names",
]
