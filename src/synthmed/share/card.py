"""Model cards: a ``README.md`` with YAML front matter (the form diffusers' training examples write) for any
artifact synthmed trains, built from the ``synthmed.json`` provenance saved beside its weights."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from synthmed.errors import DataError
from synthmed.utils.tmpfiles import mkstemp_for

logger = logging.getLogger(__name__)

CARD_FILE = "README.md"
#: The line after the front matter of a card synthmed wrote (it may rewrite such a card, never another).
MARKER = "<!-- model card written by synthmed; rewrite with `synthmed push --card-only` -->"
COMMON_TAGS = ["synthmed", "medical-imaging", "synthetic-data"]

#: Per provenance ``kind``: library, pipeline tag, tags and a one-line description.
KINDS: dict[str, dict[str, Any]] = {
    "ldm": {"library_name": "diffusers", "pipeline_tag": "text-to-image",
            "tags": ["latent-diffusion", "text-to-image", "diffusers-training"],
            "what": "a text-to-image latent diffusion model trained from scratch (MSDM recipe)"},
    "lora": {"library_name": "diffusers", "pipeline_tag": "text-to-image",
             "tags": ["lora", "text-to-image", "diffusers-training"],
             "what": "LoRA weights for a Stable Diffusion pipeline (`pipe.load_lora_weights(folder)`)"},
    "textual_inversion": {"library_name": "diffusers", "pipeline_tag": "text-to-image",
                          "tags": ["textual_inversion", "text-to-image", "diffusers-training"],
                          "what": "textual-inversion embeddings (`pipe.load_textual_inversion(file)`)"},
    "controlnet": {"library_name": "diffusers", "pipeline_tag": "text-to-image",
                   "tags": ["controlnet", "text-to-image", "image-segmentation", "diffusers-training"],
                   "what": "a ControlNet that makes its base pipeline draw a lesion where a mask says "
                           "(`ControlNetModel.from_pretrained(folder)` in the base's ControlNet pipeline)"},
    "segmenter": {"library_name": "synthmed", "tags": ["image-segmentation"],
                  "what": "a lesion segmenter (U-Net) trained on real image + mask pairs"},
    "findings-judge": {"library_name": "synthmed", "tags": ["image-classification"],
                       "what": "a findings judge: reads tumour presence, side and lobe from a brain-MRI slice"},
    "localizer": {"library_name": "synthmed", "tags": ["anomaly-detection", "image-segmentation", "clip"],
                  "what": "a CLIP-based tumour localiser (anomaly map and image score, seed 003)"},
    "localize-backbone": {"library_name": "transformers", "tags": ["clip"],
                          "what": "a small CLIP trained from scratch as the localiser's backbone"},
}

CAVEATS = (
    "## Caveats\n\n"
    "- Trained for research on synthetic medical images; not a medical device, not for diagnosis.\n"
    "- Images it makes are synthetic: label them as such wherever they go, and measure fidelity, adherence and "
    "usefulness on your own held-out real data before relying on them (`synthmed evaluate`).\n"
    "- A generative model can memorise training images; audit it before sharing (`synthmed evaluate privacy`).\n"
    "  Share it only where the training data's terms allow.\n")


def _provenance(folder: Path) -> dict[str, Any]:
    path = folder / "synthmed.json"
    if not path.is_file():
        raise DataError("not a synthmed artifact: no synthmed.json (the provenance every trainer writes)", folder)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise DataError(f"synthmed.json is not valid JSON ({err})", path) from err
    if not isinstance(data, dict) or "kind" not in data:
        raise DataError("synthmed.json has no 'kind': not an artifact's provenance", path)
    return data


def _metrics(folder: Path, prov: dict[str, Any]) -> dict[str, Any]:
    """Metrics stored with the artifact: the judge's accuracy on real test images (with its n and split)."""
    stored = folder / "real_test_metrics.json"
    record = json.loads(stored.read_text(encoding="utf-8")) if stored.is_file() else {}
    accuracy = record.get("accuracy") or prov.get("real_test_accuracy") or {}
    where = f" ({record['split']} split, n={record['n']})" if "n" in record and "split" in record else ""
    out = {f"accuracy on real {k}{where}": v for k, v in accuracy.items() if isinstance(v, int | float)}
    calibration = prov.get("calibration") if isinstance(prov.get("calibration"), dict) else {}
    result = calibration.get("metrics") or {}
    n = result.get("n_images")
    for k, m in (result.get("metrics") or {}).items():
        if isinstance(m, dict) and isinstance(m.get("value"), int | float):
            out[f"{k} ({calibration.get('split')} split{f', n={n}' if n else ''})"] = m["value"]
    return out


def _steps(prov: dict[str, Any]) -> str | None:
    """``autoencoder builtin:phantom-vae-128-gan, unet 3600`` (per stage), or a fine-tuning run's steps."""
    stages = prov.get("stages")
    if isinstance(stages, dict):
        parts = []
        for name, stage in stages.items():
            value = (stage.get("steps") or stage.get("pretrained")) if isinstance(stage, dict) else stage
            parts.append(f"{name} {value if value is not None else '-'}")
        return ", ".join(parts)
    steps = (prov.get("result") or {}).get("steps")
    return str(steps) if steps is not None else None


def card_text(folder: str | Path, *, license: str = "other") -> str:
    """The model card of the artifact in ``folder``.

    Raises:
        DataError: ``folder`` has no readable ``synthmed.json``.
    """
    import yaml

    folder = Path(folder)
    prov = _provenance(folder)
    kind = str(prov["kind"])
    info = KINDS.get(kind, {"library_name": "synthmed", "tags": [], "what": f"a synthmed artifact ({kind})"})
    config = prov.get("config") or {}
    front: dict[str, Any] = {"license": license, "library_name": info["library_name"],
                             "tags": [*COMMON_TAGS, *info["tags"]]}
    if info.get("pipeline_tag"):
        front["pipeline_tag"] = info["pipeline_tag"]
    base = config.get("base") or config.get("backbone")
    if isinstance(base, str) and base and base != "scratch":
        front["base_model"] = base
    tokens = prov.get("tokens")
    if isinstance(tokens, dict) and tokens:
        front["instance_prompt"] = " ".join(tokens)
    data = prov.get("data") if isinstance(prov.get("data"), dict) else {}
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", MARKER, "",
             f"# {folder.name}", "", f"{info['what'][0].upper()}{info['what'][1:]}, trained with "
             f"[synthmed](https://pypi.org/project/synthmed/) {prov.get('packages', {}).get('synthmed', '')}.", ""]
    if tokens:
        lines += ["## Trigger tokens", "", ", ".join(f"`{t}` ({n} vectors)" for t, n in tokens.items()), ""]
    if isinstance(prov.get("conditioning"), str):
        lines += ["## Conditioning image", "", prov["conditioning"], ""]
    lines += ["## Training", "", "| setting | value |", "|---|---|"]
    settings = {"kind": kind, "seed": prov.get("seed", config.get("seed")), "base model": front.get("base_model"),
                "data rows": data.get("rows", prov.get("n_train")), "data split": data.get("split"),
                "data hash (sha256)": data.get("hash", prov.get("data_hash")),
                "steps": _steps(prov),
                "wall seconds": round(prov["wall_seconds"]) if isinstance(prov.get("wall_seconds"), int | float)
                else None, "git revision": prov.get("git_revision")}
    lines += [f"| {k} | {json.dumps(v) if isinstance(v, dict | list) else v} |" for k, v in settings.items()
              if v not in (None, "", {})]
    lines += ["", "The full configuration, package versions and seeds are in `synthmed.json`.", ""]
    metrics = _metrics(folder, prov)
    if metrics:
        lines += ["## Measured", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()]
        lines += [""]
    else:
        lines += ["## Measured", "", "No metrics are stored with this artifact: evaluate it with `synthmed evaluate` "
                  "(fidelity with its extractor and n, adherence with its judge, privacy) and add them here.", ""]
    lines += [CAVEATS]
    return "\n".join(lines)


def card_after_training(folder: str | Path) -> None:
    """A trainer's last step: write the artifact's model card; a problem is logged, never fails the training."""
    try:
        write_model_card(folder)
    except (DataError, OSError, ValueError) as err:
        logger.warning("%s: no model card written (%s)", folder, err)


def write_model_card(folder: str | Path, *, license: str = "other") -> Path:
    """Write ``folder/README.md`` (atomically); a README.md that synthmed did not write is never replaced.

    Raises:
        DataError: no provenance, or a README.md written by someone else.
    """
    import os

    folder = Path(folder)
    text = card_text(folder, license=license)
    path = folder / CARD_FILE
    if path.is_file() and MARKER not in path.read_text(encoding="utf-8", errors="replace"):
        raise DataError("README.md exists and was not written by synthmed; it is kept as it is (remove it to get a "
                        "generated card)", path)
    fd, tmp = mkstemp_for(folder, suffix=".md")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path
