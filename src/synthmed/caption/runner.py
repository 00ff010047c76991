"""Caption a whole dataset directory: findings and prompt text for every row.

The captioner's findings go into ``findings`` and their rendering into ``text``. What the
row held before is kept the first time it is overwritten, in ``original_findings`` and
``original_text`` (e.g. the phantom's ground truth, or an importer's caption), so a
rerun is idempotent and the reference is never lost. A row the captioner cannot caption
keeps its old values and gets ``caption_error`` (and ``caption_raw``, the model's reply,
when there was one); the summary counts them. When a row's caption changes, its old
``paraphrases`` are dropped (they paraphrase a caption that no longer holds).

Captioners that call a model (``hf:``, ``api:``) have their results cached on disk, by
(image pixels, model, prompt version), in ``DIR/.synthmed/caption_cache.jsonl`` unless
told otherwise. The cache is written after every batch, so a killed job, run again, asks
the model only about the images it had not reached; failures that may not recur (network
errors, rate limits that outlasted the retries) are not cached and are asked again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from synthmed.caption.base import CaptionInput, CaptionResult, get_captioner
from synthmed.data.dataset import ImageDataset, write_records
from synthmed.data.records import DatasetRecord
from synthmed.errors import CaptionError
from synthmed.findings.render import render_text
from synthmed.findings.schema import findings_from_dict
from synthmed.llm.api import close_chat
from synthmed.llm.cache import ReplyCache
from synthmed.utils.outdir import first_argument, writes_to

logger = logging.getLogger(__name__)

CACHE_FILE = ".synthmed/caption_cache.jsonl"
RAW_LIMIT = 8000  # characters of a failed reply kept in the metadata row


@dataclass
class CaptionSummary:
    """What :func:`caption_dataset` did."""

    captioner: str
    rows: int = 0
    captioned: int = 0
    failed: int = 0
    cached: int = 0
    errors: dict[str, str] = field(default_factory=dict)


def _modality(rec: DatasetRecord, default: str) -> str:
    for f in (rec.original_findings, rec.findings):
        if f is not None:
            return f.modality
    return default


def _to_cache(res: CaptionResult) -> dict:
    return {"findings": res.findings.to_dict() if res.findings is not None else None, "raw": res.raw,
            "error": res.error}


def _from_cache(key: str, value: dict) -> CaptionResult:
    findings = findings_from_dict(value["findings"]) if value.get("findings") is not None else None
    return CaptionResult(key, findings, raw=value.get("raw"), error=value.get("error"))


def _caption_batch(cap: object, inputs: list[CaptionInput], cache: ReplyCache | None,
                   summary: CaptionSummary) -> list[CaptionResult]:
    """Results for ``inputs``: cached ones from the cache, the others from the captioner (then cached)."""
    keyer = getattr(cap, "cache_key", None)
    if cache is None or keyer is None:
        return cap.caption(inputs)  # type: ignore[attr-defined]
    keys = [keyer(item) for item in inputs]
    results: list[CaptionResult | None] = []
    todo: list[int] = []
    for i, (item, key) in enumerate(zip(inputs, keys, strict=True)):
        value = cache.get(key)
        results.append(_from_cache(item.key, value) if value is not None else None)
        if value is None:
            todo.append(i)
    summary.cached += len(inputs) - len(todo)
    if todo:
        fresh = cap.caption([inputs[i] for i in todo])  # type: ignore[attr-defined]
        for i, res in zip(todo, fresh, strict=True):
            results[i] = res
            if not res.transient:
                cache.put(keys[i], _to_cache(res))
    return [r for r in results if r is not None]


def _caption_streaming(cap: object, records: list[DatasetRecord], input_for, cache: ReplyCache | None,
                       summary: CaptionSummary, workers: int, bar) -> list[CaptionResult]:
    """Results for ``records`` in order, one image per request with ``workers`` requests in flight continuously.

    A new request starts as soon as any finishes (a slow reply holds up only its own image), and
    at most ``2 * workers`` images are read ahead. Cache reads and writes stay on this thread.
    """
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    keyer = getattr(cap, "cache_key", None) if cache is not None else None
    results: list[CaptionResult | None] = [None] * len(records)
    queue = iter(range(len(records)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        running: dict = {}

        def submit_next() -> None:
            for i in queue:
                item = input_for(records[i])
                key = keyer(item) if keyer is not None else None
                value = cache.get(key) if key is not None else None  # type: ignore[union-attr]
                if value is not None:
                    results[i] = _from_cache(item.key, value)
                    summary.cached += 1
                    bar.update(1)
                    continue
                running[pool.submit(cap.caption, [item])] = (i, key)  # type: ignore[attr-defined]
                return

        def keep(key: str | None, res: CaptionResult) -> None:
            if key is not None and not res.transient:
                cache.put(key, _to_cache(res))  # type: ignore[union-attr]

        try:
            for _ in range(2 * workers):
                submit_next()
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    i, key = running.pop(future)
                    (res,) = future.result()
                    results[i] = res
                    keep(key, res)
                    bar.update(1)
                    submit_next()
                bar.set_postfix(cached=summary.cached, refresh=False)
        finally:  # stopped by an error or an interrupt: cache what is still answered, so a rerun skips it
            for future, (_, key) in running.items():
                if not future.cancel():
                    try:
                        keep(key, future.result()[0])
                    except BaseException:  # noqa: BLE001 - the original error is the one that propagates
                        pass
    return [r for r in results if r is not None]


@writes_to(first_argument("root"))
def caption_dataset(root: str | Path, captioner: str = "mask", *, modality: str = "brain_mri",
                    batch_size: int = 16, progress: bool = True, cache: bool | str | Path = True,
                    **options: object) -> CaptionSummary:
    """Caption every row of the dataset at ``root`` in place (atomic rewrite of the metadata).

    Args:
        root: Dataset directory.
        captioner: Registered captioner name (``mask``, ``hf:<model>``, ``api:<model>``).
        modality: Modality assumed for rows without findings.
        batch_size: Images per captioner call of a local model. An ``api:`` captioner sends one
            image per request instead, with its ``concurrency`` requests in flight continuously.
        progress: Show a progress bar (rate and ETA).
        cache: True for ``root/.synthmed/caption_cache.jsonl``, a path for another file,
            False for no cache. Only captioners that call a model are cached.
        **options: Passed to the captioner factory.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    cap = get_captioner(captioner, **options)  # checks the name and options; models load lazily
    ds = ImageDataset(root)
    store: ReplyCache | None = None
    if cache is not False and hasattr(cap, "cache_key"):
        store = ReplyCache(Path(root) / CACHE_FILE if cache is True else Path(cache))
    summary = CaptionSummary(captioner=captioner, rows=len(ds))
    out: list[DatasetRecord] = []
    bar = tqdm(total=len(ds), desc=f"caption[{captioner}]", unit="img", disable=not progress)

    def input_for(r: DatasetRecord) -> CaptionInput:
        return CaptionInput(r.file_name, ds.image(r), ds.mask(r), r.spacing_mm, _modality(r, modality))

    workers = int(getattr(cap, "request_concurrency", 1))
    try:
        if workers > 1:  # a server: keep `workers` requests in flight, never waiting for a batch's slowest
            results = _caption_streaming(cap, ds.records, input_for, store, summary, workers, bar)
            out = [_apply(rec, res, captioner, summary) for rec, res in zip(ds.records, results, strict=True)]
        else:
            for start in range(0, len(ds), batch_size):
                batch = ds.records[start:start + batch_size]
                for rec, res in zip(batch, _caption_batch(cap, [input_for(r) for r in batch], store, summary),
                                    strict=True):
                    out.append(_apply(rec, res, captioner, summary))
                bar.update(len(batch))
                bar.set_postfix(cached=summary.cached, failed=summary.failed, refresh=False)
    finally:
        bar.close()
        close_chat(cap)
    write_records(root, out)
    if summary.failed and not summary.captioned:
        name, why = next(iter(summary.errors.items()))
        raise CaptionError(f"{root}: none of the {summary.rows} rows could be captioned with '{captioner}' "
                           f"(first, {name!r}: {why[:300]}); each row's reason is in its caption_error", summary)
    if summary.failed:
        logger.warning("%d of %d rows could not be captioned (see caption_error in the metadata)",
                       summary.failed, summary.rows)
    return summary


def _apply(rec: DatasetRecord, res: CaptionResult, captioner: str, summary: CaptionSummary) -> DatasetRecord:
    data = rec.to_json_dict()
    if res.findings is None:
        summary.failed += 1
        summary.errors[rec.file_name] = res.error or "no findings"
        data["caption_error"] = res.error or "no findings"
        data["caption_raw"] = res.raw[:RAW_LIMIT] if res.raw else None
        return DatasetRecord.model_validate(data)
    if rec.captioner is None:  # first captioning: keep what the row held
        data["original_findings"] = data.get("findings")
        data["original_text"] = data.get("text")
    data["findings"] = res.findings.to_dict()
    data["text"] = render_text(res.findings)
    if data["text"] != rec.text and data.get("paraphrases"):
        data["paraphrases"] = []  # paraphrases of the old caption would contradict the new findings
    data["captioner"] = captioner
    data["caption_error"] = None
    data.pop("caption_raw", None)
    summary.captioned += 1
    return DatasetRecord.model_validate(data)
