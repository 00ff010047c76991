"""Evaluation: how accurate, real, controllable, private and useful images and captions are."""

from synthmed.evaluate.attributes import AttributeAgreement, attribute_agreement

__all__ = ["AttributeAgreement", "attribute_agreement"]
