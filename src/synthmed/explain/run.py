"""``synthmed explain``: ask a VLM to explain each localisation, in each prompting mode, and score it.

For every image and mode the VLM gets the prompt of :mod:`synthmed.explain.prompts` (with
the raw scan for ``zero-shot``, with the localiser's red-region overlay and findings
otherwise) and its reply is parsed into findings plus an explanation. Parsed findings are
scored against the dataset's true findings per attribute and per mode, so seed 003's claim
that localisation in the prompt beats zero-shot becomes a number. Everything goes into one
``explanation.json`` with the prompt version and the model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from synthmed.data.dataset import ImageDataset
from synthmed.data.imageio import load_image
from synthmed.errors import ConfigError, DataError
from synthmed.explain.prompts import MODES, PROMPT_VERSION, build_prompt, parse_reply
from synthmed.findings.agreement import agreement_metric, attribute_agreement
from synthmed.findings.render import render_text
from synthmed.findings.schema import BrainMRIFindings
from synthmed.llm.chat import ChatMessage, ChatModel, ChatRequest, chat_model
from synthmed.localize.predict import PREDICTIONS_FILE
from synthmed.results import ExplainResult, ExplainScores, write_result
from synthmed.utils.provenance import provenance
from synthmed.viz import to_rgb8

logger = logging.getLogger(__name__)


class ExplainConfig(BaseModel):
    """Settings of :func:`explain_dataset`."""

    model_config = ConfigDict(extra="forbid")

    data: Path = Field(description="dataset directory (true findings are used for scoring)")
    pred: Path | None = Field(None, description="output folder of `synthmed localize predict`")
    out: Path = Field(description="explanation.json to write")
    vlm: str = Field(description="hf:<model id or path> or api:<model>")
    modes: list[str] = Field(default_factory=lambda: list(MODES))
    split: str | None = None
    limit: int | None = Field(None, ge=1, description="explain at most this many images")
    base_url: str | None = None
    max_new_tokens: int = Field(256, ge=1)
    seed: int = 0
    device: str | None = None
    progress: bool = True


def _read_predictions(pred: Path) -> dict[str, dict]:
    path = pred / PREDICTIONS_FILE
    if not path.is_file():
        raise DataError(f"no {PREDICTIONS_FILE}; pass the output folder of `synthmed localize predict`", pred)
    rows = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                row = json.loads(line)
                rows[row["file_name"]] = row
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise DataError(f"bad prediction row ({err})", path, lineno) from err
    return rows


def localizer_text(findings: dict | None) -> str:
    """The localiser's region findings as the VLM is told them (and the app shows them)."""
    if not findings:
        return "no usable finding (the map could not be described)."
    return render_text(BrainMRIFindings.model_validate(findings), include_mm=True, header="")


def explain_image(backend: ChatModel, scan: np.ndarray, overlay: np.ndarray | None, localizer_findings: dict | None,
                  modes: list[str]) -> dict[str, dict]:
    """Ask ``backend`` about one image in each of ``modes``.

    Args:
        scan: The image as (H, W, 3) uint8.
        overlay: The localiser's red-region overlay (H, W, 3) uint8; needed by every mode but zero-shot.
        localizer_findings: The findings read from the localiser's region (a findings dict), or None.

    Returns:
        Per mode: ``reply``, ``findings`` (a dict or None), ``explanation``, ``error`` and ``prompt``.
    """
    requests, prompts = [], {}
    for mode in modes:
        prompt = build_prompt(mode, localizer_text(localizer_findings) if overlay is not None else None)
        if prompt.uses_overlay and overlay is None:
            raise ConfigError(f"mode {mode} needs the localiser's overlay")
        requests.append(ChatRequest((ChatMessage("user", prompt.text, overlay if prompt.uses_overlay else scan),)))
        prompts[mode] = prompt.text
    results = {}
    for mode, reply in zip(modes, backend.answer(requests), strict=True):
        if isinstance(reply, Exception):
            results[mode] = {"reply": None, "findings": None, "explanation": None, "error": f"request failed: {reply}"}
        else:
            parsed = parse_reply(reply)
            results[mode] = {"reply": reply, "explanation": parsed.explanation, "error": parsed.error,
                             "findings": parsed.findings.model_dump(mode="json") if parsed.findings else None}
        results[mode]["prompt"] = prompts[mode]
    return results


def explain_dataset(cfg: ExplainConfig, backend: ChatModel | None = None) -> ExplainResult:
    """Explain every image of ``cfg.data`` (or one split) in each mode and write ``cfg.out``.

    Args:
        cfg: The settings.
        backend: A ready back end (default: built from ``cfg.vlm``).

    Returns:
        The written report (``scores`` per mode and ``items``).
    """
    bad = [m for m in cfg.modes if m not in MODES]
    if bad or not cfg.modes:
        raise ConfigError(f"unknown explanation modes {bad or cfg.modes}; choose from {', '.join(MODES)}")
    needs_pred = any(m != "zero-shot" for m in cfg.modes)
    if needs_pred and cfg.pred is None:
        raise ConfigError("modes instruction and chain-of-thought need --pred (the `synthmed localize predict` "
                          "folder with overlays and findings)")
    ds = ImageDataset(cfg.data)
    records = ds.records if cfg.split is None else ds.split(cfg.split)
    preds = _read_predictions(Path(cfg.pred)) if cfg.pred is not None else {}
    if needs_pred:
        missing = [r.file_name for r in records if r.file_name not in preds]
        if missing:
            raise DataError(f"{len(missing)} images have no localisation (first: {missing[0]!r}); run `synthmed "
                            "localize predict` on the same data", cfg.pred)
    records = records[: cfg.limit] if cfg.limit else records
    if not records:
        raise DataError("no images to explain", cfg.data)
    backend = backend or chat_model(cfg.vlm, vision=True, what="VLM back end", base_url=cfg.base_url,
                                    max_new_tokens=cfg.max_new_tokens, max_tokens=cfg.max_new_tokens, seed=cfg.seed,
                                    device=cfg.device)
    items = []
    pairs: dict[str, list] = {m: [] for m in cfg.modes}
    bar = tqdm(total=len(records) * len(cfg.modes), desc="explain", disable=not cfg.progress)
    for rec in records:
        row = preds.get(rec.file_name)
        overlay = to_rgb8(load_image(Path(cfg.pred) / row["overlay"])) if row else None  # type: ignore[operator]
        results = explain_image(backend, to_rgb8(ds.image(rec)), overlay, row.get("findings") if row else None,
                                cfg.modes)
        for mode, result in results.items():
            if isinstance(rec.findings, BrainMRIFindings):
                parsed = result["findings"]
                pairs[mode].append((BrainMRIFindings.model_validate(parsed) if parsed else None, rec.findings))
            bar.update(1)
        items.append({"file_name": rec.file_name,
                      "reference_findings": rec.findings.model_dump(mode="json") if rec.findings else None,
                      "localizer_findings": row.get("findings") if row else None, "results": results})
    bar.close()
    scores = {}
    for mode, mode_pairs in pairs.items():
        agg = attribute_agreement(mode_pairs)
        n_parsed = sum(p is not None for p, _ in mode_pairs)
        scores[mode] = ExplainScores(n=len(mode_pairs),
                                     parsed_fraction=n_parsed / len(mode_pairs) if mode_pairs else None,
                                     attributes={a: agreement_metric(g) for a, g in agg.items()})
    report = ExplainResult(prompt_version=PROMPT_VERSION, model=backend.name, modes=cfg.modes, n_images=len(items),
                           scores=scores, items=items,
                           provenance=provenance(kind="explain", config=cfg.model_dump(mode="json")))
    write_result(cfg.out, report)
    logger.info("explained %d images in %d modes -> %s", len(items), len(cfg.modes), cfg.out)
    return report
