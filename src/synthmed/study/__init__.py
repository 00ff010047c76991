"""Blinded reader studies: readers tell real from synthetic images in a web app; their answers are scored.

``create_study`` draws the images, ``serve`` runs the reader app, ``score_study`` scores the answers
(see docs/reader-study.md).
"""

from synthmed.study.create import StudyCreateConfig, create_study
from synthmed.study.score import score_study

__all__ = ["StudyCreateConfig", "create_study", "score_study"]
