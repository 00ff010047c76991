"""The import driver: discover -> read -> prepare pixels -> write, the same for every format.

Error policy:

* *Structural* problems — the source does not exist, the layout or CSV header is not the
  expected one, no input files, two inputs that would get the same output name, an unknown
  option — raise at once, before anything is written.
* Problems with *one input* — a corrupt image, a ``.mat`` without ``cjdata/tumorMask``, a
  mask whose size differs from its image, a CSV row naming a missing image — are logged,
  counted in :attr:`ImportReport.skipped` with the reason, and the import goes on. With
  ``strict=True`` the first such problem raises instead.

Re-running an import into the same directory skips the images already written, so a killed
import resumes where it stopped. Each run is recorded in ``OUT/synthmed.json``; a re-run of
the same format and source with different pixel settings (size, windowing, bits, options)
is refused, because it would mix two mappings in one dataset.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from synthmed.data.dataset import DatasetWriter
from synthmed.data.importers.base import Filtered, ImportReport, SkippedItem, SourceItem
from synthmed.data.importers.pixels import prepare
from synthmed.data.importers.registry import build_options, get_format
from synthmed.data.windowing import Windowing, parse_windowing
from synthmed.errors import ConfigError, DataError
from synthmed.utils.secrets import redact_secrets

logger = logging.getLogger(__name__)

#: Provenance of the directory (see docs/data-format.md): every import run's config and result.
RUN_LOG = "synthmed.json"


class _NameClash(DataError):
    """Two inputs map to one output name: structural, so never skipped."""


def import_dataset(format: str, src: str | Path, out: str | Path, *, size: int | None = None,
                   windowing: Windowing | str | None = None, bits: int | None = None,
                   strict: bool = False, progress: bool = True, **options: Any) -> ImportReport:
    """Import a public or local dataset into a synthmed dataset directory.

    Args:
        format: One of :func:`~synthmed.data.importers.available_formats` ("folder",
            "figshare", "dicom", "nifti", "csv").
        src: The input file or directory.
        out: The dataset directory to write (created, or resumed if it exists).
        size: Pad to a square and resize to ``size`` x ``size`` pixels; None keeps the size.
        windowing: A :class:`Windowing` or a spec ("percentile:1:99", "window:C:W",
            "minmax", "none"). None stores raw values losslessly (16-bit stays 16-bit).
        bits: Depth of windowed images, 8 (default) or 16. Raw images keep their depth.
        strict: Raise on the first bad input file instead of skipping and reporting it.
        progress: Show a progress bar over the input files.
        **options: The format's own options (see its ``*Options`` dataclass), e.g.
            ``axis=2`` for NIfTI or ``keep_patient_ids=True`` for DICOM.

    Returns:
        What was written, already present, left out and skipped (with reasons).

    Raises:
        ConfigError: unknown format or option, or an invalid value.
        DataError: a structural problem with the input, or (strict) a bad input file.
    """
    spec = get_format(format)
    opts = build_options(spec, options)
    win = parse_windowing(windowing) if isinstance(windowing, str) or windowing is None else windowing
    if size is not None and not 8 <= int(size) <= 8192:
        raise ConfigError(f"size must be between 8 and 8192 pixels, got {size}")
    if bits not in (None, 8, 16):
        raise ConfigError(f"bits must be 8 or 16, got {bits}")
    src, out = Path(src), Path(out)
    if not src.exists():
        raise DataError(f"{format} source not found", src)

    items = spec.discover(src, opts)
    _check_unique_names(items)
    config = {"format": format, "src": str(src.resolve()), "size": size,
              "windowing": asdict(win) if win else None, "bits": bits,
              "options": redact_secrets(asdict(opts))}
    _check_same_config(out, config)
    writer = DatasetWriter(out)
    report = ImportReport(format=format, out=str(out))
    try:
        _run(spec, opts, items, writer, report, win, bits, size, strict, progress)
    finally:
        _log_run(out, config, report)
        writer.close()
    logger.debug(report.summary())  # the caller gets the report; the CLI prints it
    return report


def _run(spec: Any, opts: Any, items: list[SourceItem], writer: DatasetWriter, report: ImportReport,
         win: Windowing | None, bits: int | None, size: int | None, strict: bool, progress: bool) -> None:
    from tqdm.auto import tqdm

    written_from: dict[str, Path] = {}
    for item in tqdm(items, desc=f"import {spec.name}", unit="file", disable=not progress):
        if item.names is not None and all(writer.has(n) for n in item.names):
            report.already_present += len(item.names)
            continue
        try:
            for sample in spec.read(item, opts, win):
                if isinstance(sample, Filtered):
                    report.filtered += sample.count
                    continue
                for note in sample.notes:
                    logger.warning(note)
                    report.warnings.append(note)
                if sample.name in written_from:
                    raise _NameClash(f"output name {sample.name!r} is produced twice (also by "
                                    f"{written_from[sample.name]}); rename one of the inputs", item.path)
                if writer.has(sample.name):
                    report.already_present += 1
                    continue
                ready = prepare(sample, win, bits, size, source=str(item.path))
                fields = {**sample.fields, "spacing_mm": ready.spacing_mm, "windowing": ready.windowing}
                writer.add(sample.name, ready.image, mask=ready.mask, **fields)
                written_from[sample.name] = item.path
                report.written += 1
        except DataError as err:
            if strict or isinstance(err, _NameClash):
                raise
            logger.warning("skipped: %s", err)
            report.skipped.append(SkippedItem(source=str(item.path), reason=str(err), line=item.line))


def _check_unique_names(items: list[SourceItem]) -> None:
    seen: dict[str, SourceItem] = {}
    for item in items:
        for name in item.names or ():
            if name in seen:
                raise DataError(f"{seen[name].path} and {item.path} would both be written as {name!r}; "
                                "rename one of them", item.path, item.line)
            seen[name] = item


def _read_log(out: Path) -> dict[str, Any]:
    log = out / RUN_LOG
    if not log.is_file():
        return {}
    try:
        data = json.loads(log.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"unreadable provenance file ({err.msg} at line {err.lineno}); remove it to continue",
                        log) from err
    return data if isinstance(data, dict) else {}


def _check_same_config(out: Path, config: dict[str, Any]) -> None:
    log = _read_log(out)
    for run in log.get("runs", []) if log.get("kind") == "import" else []:
        old = run.get("config", {})
        if old.get("format") == config["format"] and old.get("src") == config["src"]:
            diff = [k for k in ("size", "windowing", "bits", "options") if old.get(k) != config[k]]
            if diff:
                raise ConfigError(
                    f"{out} already holds an import of {config['src']} with different {', '.join(diff)} "
                    f"({', '.join(f'{k}={old.get(k)!r}' for k in diff)}); resuming would mix two pixel "
                    "mappings in one dataset. Use a new output directory, or the same settings."
                )


def _log_run(out: Path, config: dict[str, Any], report: ImportReport) -> None:
    """Append this run to ``OUT/synthmed.json`` (kind "import"), keeping earlier runs."""
    from synthmed.utils.provenance import provenance, write_json_atomic

    log = _read_log(out)
    ours = log.get("kind") == "import"
    runs = log.get("runs", []) if ours else []
    earlier = log.get("earlier") if ours else (log or None)  # another stage's provenance, e.g. a phantom's
    result = {"written": report.written, "already_present": report.already_present,
              "filtered": report.filtered, "skipped": len(report.skipped), "warnings": len(report.warnings)}
    runs.append({"config": config, "result": result})
    extra = {"earlier": earlier} if earlier else {}
    write_json_atomic(out / RUN_LOG, provenance(kind="import", runs=runs, **extra))
