"""The typed row of a dataset directory's ``metadata.jsonl``.

See ``docs/data-format.md`` for the directory layout. Unknown fields are kept, so a
user's own columns survive every synthmed stage.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from synthmed.findings.schema import BrainMRIFindings, GenericFindings, GIEndoscopyFindings, findings_from_dict

Split = Literal["train", "val", "test"]
SPLITS: tuple[str, ...] = ("train", "val", "test")
AnyFindings = BrainMRIFindings | GIEndoscopyFindings | GenericFindings


class DatasetRecord(BaseModel):
    """One image of a dataset directory.

    Paths are relative to the dataset directory and use forward slashes.
    """

    model_config = ConfigDict(extra="allow")

    file_name: str
    mask_file_name: str | None = None
    label: str | None = None
    patient_id: str | None = None
    split: Split | None = None
    findings: AnyFindings | None = None
    text: str | None = None
    paraphrases: list[str] = Field(default_factory=list)
    source: str = "real"
    spacing_mm: float | None = Field(default=None, gt=0, description="pixel spacing in mm (square pixels)")
    windowing: dict[str, Any] | None = None
    # Set by `synthmed caption`: the captioner, and what the row held before its first captioning.
    captioner: str | None = None
    original_findings: AnyFindings | None = None
    original_text: str | None = None
    caption_error: str | None = None
    # Generated rows only.
    prompt: str | None = None
    requested_findings: AnyFindings | None = None
    seed: int | None = None
    steps: int | None = None
    guidance_scale: float | None = None
    scheduler: str | None = None
    model_id: str | None = None

    @field_validator("findings", "requested_findings", "original_findings", mode="before")
    @classmethod
    def _parse_findings(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return findings_from_dict(value)
        return value

    @field_validator("file_name", "mask_file_name")
    @classmethod
    def _relative_posix(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if value.startswith("/") or "\\" in value or ".." in value.split("/"):
            raise ValueError(f"must be a relative path inside the dataset directory, got {value!r}")
        return value

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON object written to ``metadata.jsonl``."""
        return self.model_dump(mode="json")
