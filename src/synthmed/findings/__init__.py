"""Structured findings: schemas, the findings -> text renderer, the text -> findings parser and agreement scoring."""

from synthmed.findings.parse import parse_text
from synthmed.findings.render import render_text
from synthmed.findings.schema import (
    BrainMRIFindings,
    Findings,
    GenericFindings,
    GIEndoscopyFindings,
    findings_from_dict,
    size_category_for,
)

__all__ = [
    "BrainMRIFindings",
    "Findings",
    "GIEndoscopyFindings",
    "GenericFindings",
    "findings_from_dict",
    "parse_text",
    "render_text",
    "size_category_for",
]
