"""Caption a whole dataset directory: findings and prompt text for every row.

The captioner's findings go into ``findings`` and their rendering into ``text``. What the
row held before is kept the first time it is overwritten, in ``original_findings`` and
``original_text`` (e.g. the phantom's ground truth, or an importer's caption), so a
rerun is idempotent and the reference is never lost. A row the captioner cannot caption
keeps its old values and gets ``caption_error``; the summary counts them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from synthmed.caption.base import CaptionInput, get_captioner
from synthmed.data.dataset import ImageDataset, write_records
from synthmed.data.records import DatasetRecord
from synthmed.findings.render import render_text

logger = logging.getLogger(__name__)


@dataclass
class CaptionSummary:
    """What :func:`caption_dataset` did."""

    captioner: str
    rows: int = 0
    captioned: int = 0
    failed: int = 0
    errors: dict[str, str] = field(default_factory=dict)


def _modality(rec: DatasetRecord, default: str) -> str:
    for f in (rec.original_findings, rec.findings):
        if f is not None:
            return f.modality
    return default


def caption_dataset(root: str | Path, captioner: str = "mask", *, modality: str = "brain_mri",
                    batch_size: int = 16, progress: bool = True, **options: object) -> CaptionSummary:
    """Caption every row of the dataset at ``root`` in place (atomic rewrite of the metadata).

    Args:
        root: Dataset directory.
        captioner: Registered captioner name (``mask``, later ``hf:<model>``, ``api:<model>``).
        modality: Modality assumed for rows without findings.
        batch_size: Images per captioner call.
        **options: Passed to the captioner factory.
    """
    cap = get_captioner(captioner, **options)
    ds = ImageDataset(root)
    summary = CaptionSummary(captioner=captioner, rows=len(ds))
    out: list[DatasetRecord] = []
    bar = tqdm(total=len(ds), desc=f"caption[{captioner}]", unit="img", disable=not progress)
    for start in range(0, len(ds), batch_size):
        batch = ds.records[start:start + batch_size]
        inputs = [CaptionInput(r.file_name, ds.image(r), ds.mask(r), r.spacing_mm, _modality(r, modality))
                  for r in batch]
        for rec, res in zip(batch, cap.caption(inputs), strict=True):
            data = rec.to_json_dict()
            if res.findings is None:
                summary.failed += 1
                summary.errors[rec.file_name] = res.error or "no findings"
                data["caption_error"] = res.error or "no findings"
                out.append(DatasetRecord.model_validate(data))
                continue
            if rec.captioner is None:  # first captioning: keep what the row held
                data["original_findings"] = data.get("findings")
                data["original_text"] = data.get("text")
            data["findings"] = res.findings.to_dict()
            data["text"] = render_text(res.findings)
            data["captioner"] = captioner
            data["caption_error"] = None
            out.append(DatasetRecord.model_validate(data))
            summary.captioned += 1
        bar.update(len(batch))
    bar.close()
    write_records(root, out)
    if summary.failed:
        logger.warning("%d of %d rows could not be captioned (see caption_error in the metadata)",
                       summary.failed, summary.rows)
    return summary
