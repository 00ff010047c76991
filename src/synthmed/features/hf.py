"""``clip:<id or path>`` and ``dinov2:<id or path>``: vision transformers through transformers.

* ``clip:`` — the projected image embedding (``CLIPModel.get_image_features`` for a full CLIP
  checkpoint, ``image_embeds`` of ``CLIPVisionModelWithProjection``), else the pooled output
  of a ``CLIPVisionModel``.
  Input: the model's ``image_size``, bicubic, CLIP mean/std.
* ``dinov2:`` — the class token after the final layer norm (``pooler_output``), the feature
  of FD_DINOv2 (Stein et al., 2023, "Exposing flaws of generative model evaluation
  metrics"; dgm-eval). Input: 224 px bicubic, ImageNet mean/std.

Both read ``preprocessor_config.json`` when the checkpoint has one (size, mean, std). A hub
id is loaded from the local Hugging Face cache when offline; a local directory is loaded by
path. Images are resized to a square (aspect ratio not preserved; medical scans are square).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

import synthmed.features.preprocess as pp
from synthmed.errors import ConfigError
from synthmed.features.base import FeatureExtractor

logger = logging.getLogger(__name__)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def _read_json(source: str, name: str) -> dict[str, Any] | None:
    """A JSON file of a local checkpoint directory or (from the local cache) of a hub repo."""
    local = Path(source).expanduser()
    if local.is_dir():
        path = local / name
        return json.loads(path.read_text()) if path.is_file() else None
    try:
        from huggingface_hub import hf_hub_download

        return json.loads(Path(hf_hub_download(source, name)).read_text())
    except Exception:  # noqa: BLE001 - a missing optional file is not an error
        return None


def _weights_record(source: str, model: torch.nn.Module) -> dict[str, Any]:
    from synthmed.utils.provenance import hash_file

    local = Path(source).expanduser()
    rec: dict[str, Any] = {"source": source}
    candidates: list[Path] = []
    if local.is_dir():
        candidates = [local / n for n in _WEIGHT_FILES]
    else:
        rec["revision"] = getattr(model.config, "_commit_hash", None)
        try:
            from huggingface_hub import try_to_load_from_cache

            candidates = [Path(p) for n in _WEIGHT_FILES if isinstance(p := try_to_load_from_cache(source, n), str)]
        except Exception:  # noqa: BLE001
            candidates = []
    for path in candidates:
        if path.is_file():
            rec.update(file=path.name, sha256=hash_file(path))
            break
    return rec


def _load(cls: Any, source: str) -> Any:
    try:
        return cls.from_pretrained(source)
    except OSError as err:
        raise ConfigError(f"could not load {source!r} with {cls.__name__}: it is neither a local checkpoint "
                          "directory nor in the local Hugging Face cache (offline machines cannot download; "
                          f"copy the model directory here and pass its path). Details: {err}") from err


class HFVisionExtractor(FeatureExtractor):
    """A transformers vision backbone as a feature extractor (see the module docstring).

    Args:
        kind: ``"clip"`` or ``"dinov2"``.
        source: A hub id (e.g. ``facebook/dinov2-base``) or a local checkpoint directory.
        device: Torch device.
    """

    comparable_with_published = False

    def __init__(self, kind: str, source: str, device: str | torch.device = "cpu"):
        super().__init__(device)
        if not source:
            raise ConfigError(f"--features {kind}:<id or path> needs a model id or a directory after '{kind}:'")
        import transformers

        self.kind, self.source = kind, source
        self.name = f"{kind}:{source}"
        config = _read_json(source, "config.json") or {}
        proc = _read_json(source, "preprocessor_config.json") or {}
        if kind == "clip":
            archs = config.get("architectures") or []
            self.full = "CLIPModel" in archs or config.get("model_type") == "clip"
            self.projected = self.full or "CLIPVisionModelWithProjection" in archs
            cls = (transformers.CLIPModel if self.full else transformers.CLIPVisionModelWithProjection
                   if self.projected else transformers.CLIPVisionModel)
            self.model = _load(cls, source)
            vision_cfg = self.model.config.vision_config if self.full else self.model.config
            default_size = vision_cfg.image_size
            mean, std = CLIP_MEAN, CLIP_STD
            self.output = ("image_embeds (get_image_features: projected)" if self.projected else "pooler_output")
            self.note = "CLIP image embeddings: Fréchet distance here is FD_CLIP, not comparable with FID."
        elif kind == "dinov2":
            self.model = _load(transformers.Dinov2Model, source)
            default_size, mean, std = 224, IMAGENET_MEAN, IMAGENET_STD
            self.output = "pooler_output (class token after layer norm)"
            self.note = "DINOv2 class-token features: Fréchet distance here is FD_DINOv2 (Stein et al. 2023), not FID."
        else:
            raise ConfigError(f"unknown transformers extractor kind {kind!r}; expected clip or dinov2")
        self.size = _proc_size(proc) or int(default_size)
        self.mean = torch.tensor(proc.get("image_mean", mean), dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(proc.get("image_std", std), dtype=torch.float32).view(1, 3, 1, 1)
        self.model.eval().requires_grad_(False).to(self.device)
        with torch.no_grad():
            probe = self.forward(torch.zeros(1, 3, self.size, self.size, device=self.device))[0]
        self.dim = int(probe.shape[-1])
        self._weights = _weights_record(source, self.model)

    def weights(self) -> dict[str, Any]:
        return self._weights

    def preprocessing(self) -> dict[str, Any]:
        return pp.describe(size=self.size, resize="bicubic-antialias", uint8_input=False, scale=1.0,
                           normalize=f"(x - {self.mean.flatten().tolist()}) / {self.std.flatten().tolist()}",
                           convention=f"synthmed {self.kind}", extra={"output": self.output})

    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        x = pp.prepare_batch(images, size=self.size, resize="bicubic-antialias", uint8_input=False, scale=1.0)
        return (x - self.mean) / self.std

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.kind == "clip" and self.full:
            out = self.model.get_image_features(pixel_values=batch)
            return (out if isinstance(out, torch.Tensor) else out.pooler_output), None
        out = self.model(pixel_values=batch)
        if self.kind == "clip" and self.projected:
            return out.image_embeds, None
        return out.pooler_output, None


def _proc_size(proc: dict[str, Any]) -> int | None:
    """The square input side from a preprocessor config (crop size first, then size)."""
    for key in ("crop_size", "size"):
        val = proc.get(key)
        if isinstance(val, int):
            return val
        if isinstance(val, dict):
            for k in ("height", "shortest_edge"):
                if isinstance(val.get(k), int):
                    return val[k]
    return None
