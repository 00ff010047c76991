"""Evaluation: how accurate, real, controllable, private and useful images and captions are."""

from synthmed.findings.agreement import AttributeAgreement, attribute_agreement

__all__ = ["AttributeAgreement", "attribute_agreement"]

# Fidelity metrics on features (pure functions; see synthmed.evaluate.fidelity).
from synthmed.evaluate.fidelity import density_coverage, fid, inception_score, kid, precision_recall  # noqa: E402

__all__ += ["density_coverage", "fid", "inception_score", "kid", "precision_recall"]
