"""The findings judge: a network trained on real images that reads findings back from images.

It scores prompt adherence (does a generated image show what its prompt asked for?) and
carries its own accuracy on real test images, so a reader knows how far to trust it.
"""

from synthmed.judge.io import FindingsJudge, builtin_judges, resolve_judge
from synthmed.judge.model import DEFAULT_ATTRIBUTES, JudgeNet, JudgeNetConfig
from synthmed.judge.train import JUDGE_PRESETS, JudgeReport, JudgeTrainConfig, evaluate_judge, train_judge

__all__ = [
    "DEFAULT_ATTRIBUTES",
    "JUDGE_PRESETS",
    "FindingsJudge",
    "JudgeNet",
    "JudgeNetConfig",
    "JudgeReport",
    "JudgeTrainConfig",
    "builtin_judges",
    "evaluate_judge",
    "resolve_judge",
    "train_judge",
]
