"""Paraphrase every caption of a dataset directory; keep only paraphrases that say the same thing.

For each row with a ``text``, the paraphraser proposes up to ``per_caption`` rewordings;
each is parsed back into findings (:func:`~synthmed.paraphrase.base.check_paraphrase`) and
kept only if they equal the findings of ``text``. The kept ones are stored in the row's
``paraphrases`` list beside ``text`` (seed 001's best strategy: originals plus
paraphrases), replacing earlier ones unless ``append`` is set. The metadata file is
rewritten atomically at the end; LLM replies are cached in
``DIR/.synthmed/paraphrase_cache.jsonl``, so a killed job, rerun, pays only for the rest.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from synthmed.data.dataset import ImageDataset, write_records
from synthmed.data.records import DatasetRecord
from synthmed.errors import ConfigError
from synthmed.findings.parse import FindingsParseError
from synthmed.llm.api import close_chat
from synthmed.llm.cache import ReplyCache
from synthmed.paraphrase.base import CHECKABLE_MODALITIES, ParaphraseInput, check_paraphrase, get_paraphraser
from synthmed.utils.outdir import first_argument, writes_to

logger = logging.getLogger(__name__)

CACHE_FILE = ".synthmed/paraphrase_cache.jsonl"


@dataclass
class ParaphraseSummary:
    """What :func:`paraphrase_dataset` did.

    Attributes:
        rows: Rows in the dataset.
        paraphrased_rows: Rows that got at least one accepted paraphrase.
        skipped: Rows without text, of a modality whose captions cannot be checked, or whose
            text the parser cannot read (file name -> reason).
        failed: Rows the paraphraser failed on (file name -> error).
        proposed / accepted / rejected: Candidate paraphrases in total.
        rejection_reasons: How often each kind of rejection happened (e.g. "changes hemisphere").
        rejected_examples: Up to 20 (original, paraphrase, reason) triples, for inspection.
        unique_before / unique_after: Distinct prompts (texts, then texts + paraphrases).
    """

    paraphraser: str
    rows: int = 0
    paraphrased_rows: int = 0
    proposed: int = 0
    accepted: int = 0
    rejected: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    rejection_reasons: Counter = field(default_factory=Counter)
    rejected_examples: list[tuple[str, str, str]] = field(default_factory=list)
    unique_before: int = 0
    unique_after: int = 0

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.proposed if self.proposed else 0.0


def _modality(rec: DatasetRecord, default: str) -> str:
    f = rec.findings or rec.original_findings
    return f.modality if f is not None else default


def _reason_kind(reason: str) -> str:
    if reason.startswith("changes "):
        return "changes " + ", ".join(part.split(" (")[0] for part in reason[8:].split("), "))
    return reason.split(":")[0]


@writes_to(first_argument("root"))
def paraphrase_dataset(root: str | Path, paraphraser: str = "template", *, per_caption: int = 5,
                       modality: str = "brain_mri", batch_size: int = 16, append: bool = False,
                       progress: bool = True, cache: bool | str | Path = True,
                       **options: object) -> ParaphraseSummary:
    """Add checked paraphrases to every captioned row of the dataset at ``root`` (in place).

    Args:
        root: Dataset directory.
        paraphraser: ``template``, ``hf:<text model>`` or ``api:<model>``.
        per_caption: Paraphrases requested per caption (K).
        modality: Modality assumed for rows without findings.
        batch_size: Captions per paraphraser call.
        append: Keep the row's existing paraphrases and add new distinct ones.
        cache: Reply cache of LLM paraphrasers: True for the default file, a path, or False.
        **options: Passed to the paraphraser factory (``seed`` for ``template``; client
            options such as ``base_url`` for ``api:``).
    """
    if per_caption < 1:
        raise ConfigError(f"--per-caption must be >= 1, got {per_caption}")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    ds = ImageDataset(root, check_files=False)
    if paraphraser.partition(":")[0] in ("hf", "api") and cache is not False:
        options = {**options, "cache": ReplyCache(Path(root) / CACHE_FILE if cache is True else Path(cache))}
    para = get_paraphraser(paraphraser, **options)
    summary = ParaphraseSummary(paraphraser=paraphraser, rows=len(ds))
    summary.unique_before = len({r.text.strip() for r in ds.records if r.text and r.text.strip()})

    todo: list[tuple[int, ParaphraseInput]] = []
    for i, rec in enumerate(ds.records):
        mod = _modality(rec, modality)
        if not rec.text or not rec.text.strip():
            summary.skipped[rec.file_name] = "no text"
        elif mod not in CHECKABLE_MODALITIES:
            summary.skipped[rec.file_name] = f"modality {mod!r}: its captions cannot be checked"
        else:
            todo.append((i, ParaphraseInput(rec.file_name, rec.text, mod)))

    new_paras: dict[int, list[str]] = {}
    bar = tqdm(total=len(todo), desc=f"paraphrase[{paraphraser}]", unit="caption", disable=not progress)
    try:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            outs = para.paraphrase([inp for _, inp in chunk], per_caption)
            for (i, inp), out in zip(chunk, outs, strict=True):
                if isinstance(out, Exception):
                    summary.failed[inp.key] = str(out)
                    continue
                new_paras[i] = _check(inp, out, summary)
            bar.update(len(chunk))
            bar.set_postfix(accepted=summary.accepted, rejected=summary.rejected, refresh=False)
    finally:
        bar.close()
        close_chat(para)

    records = []
    for i, rec in enumerate(ds.records):
        if i not in new_paras:
            records.append(rec)
            continue
        kept = (list(rec.paraphrases) if append else []) + new_paras[i]
        kept = list(dict.fromkeys(p for p in kept if p.strip() != (rec.text or "").strip()))
        summary.paraphrased_rows += bool(kept)
        records.append(DatasetRecord.model_validate({**rec.to_json_dict(), "paraphrases": kept}))
    write_records(root, records)
    texts = {r.text.strip() for r in records if r.text and r.text.strip()}
    summary.unique_after = len(texts | {p.strip() for r in records for p in r.paraphrases})
    if summary.rejected:
        logger.info("%d of %d paraphrases rejected because they changed the findings or could not be read",
                    summary.rejected, summary.proposed)
    return summary


def _check(inp: ParaphraseInput, candidates: list[str], summary: ParaphraseSummary) -> list[str]:
    kept: list[str] = []
    for cand in candidates:
        summary.proposed += 1
        try:
            reason = check_paraphrase(inp.text, cand, inp.modality)
        except (FindingsParseError, ValueError) as err:
            summary.proposed -= 1
            summary.skipped[inp.key] = f"caption cannot be parsed: {err}"
            return []
        if reason is None and cand not in kept:
            kept.append(cand)
            summary.accepted += 1
            continue
        reason = reason or "duplicate"
        summary.rejected += 1
        summary.rejection_reasons[_reason_kind(reason)] += 1
        if len(summary.rejected_examples) < 20:
            summary.rejected_examples.append((inp.text, cand, reason))
    return kept
