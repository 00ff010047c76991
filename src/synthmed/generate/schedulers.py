"""Samplers by name: a small registry of diffusers schedulers.

Each entry builds a scheduler from the model's own scheduler config (its noise schedule
and prediction type), so any sampler runs any model trained on a DDPM forward process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from synthmed.errors import ConfigError


def _ddpm(config: dict[str, Any]):
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(config)


def _ddim(config: dict[str, Any]):
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config(config)


def _dpm_solver_pp(config: dict[str, Any]):
    """DPM-Solver++(2M) (Lu et al. 2022), multistep, second order."""
    from diffusers import DPMSolverMultistepScheduler

    return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++", solver_order=2)


def _dpm_solver_pp_sde(config: dict[str, Any]):
    """SDE-DPM-Solver++(2M): the stochastic form, which adds fresh noise at every step."""
    from diffusers import DPMSolverMultistepScheduler

    return DPMSolverMultistepScheduler.from_config(config, algorithm_type="sde-dpmsolver++", solver_order=2)


def _euler(config: dict[str, Any]):
    """Euler steps of the probability-flow ODE (Karras et al. 2022, Algorithm 2 without churn)."""
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler.from_config(config)


def _euler_ancestral(config: dict[str, Any]):
    from diffusers import EulerAncestralDiscreteScheduler

    return EulerAncestralDiscreteScheduler.from_config(config)


def _unipc(config: dict[str, Any]):
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler.from_config(config)


def _pndm(config: dict[str, Any]):
    from diffusers import PNDMScheduler

    return PNDMScheduler.from_config(config)


SCHEDULERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "ddpm": _ddpm,
    "ddim": _ddim,
    "dpm-solver++": _dpm_solver_pp,
    "dpm-solver++-sde": _dpm_solver_pp_sde,
    "euler": _euler,
    "euler-ancestral": _euler_ancestral,
    "unipc": _unipc,
    "pndm": _pndm,
}


def scheduler_names() -> list[str]:
    """The registered sampler names."""
    return list(SCHEDULERS)


def check_scheduler_name(name: str) -> str:
    """Return ``name`` if registered.

    Raises:
        ConfigError: naming the valid samplers.
    """
    if name not in SCHEDULERS:
        raise ConfigError(f"unknown scheduler {name!r}; valid names: {', '.join(SCHEDULERS)}")
    return name


def make_scheduler(name: str, base_config: dict[str, Any]):
    """A scheduler ``name`` configured like ``base_config`` (usually ``pipe.scheduler.config``)."""
    return SCHEDULERS[check_scheduler_name(name)](dict(base_config))
