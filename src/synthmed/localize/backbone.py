"""A frozen (or partly trainable) Hugging Face CLIP model as the localiser's backbone.

Any ``CLIPModel`` loads by hub id or local path through ``CLIPModel.from_pretrained``: the
pretrained ViT-L/14 of seed 003 (``openai/clip-vit-large-patch14``) on a machine with the
hub, or the small from-scratch CLIP of :mod:`synthmed.localize.scratch` offline. The
backbone provides

* ``Fc``, the image embedding in the joint space (CLS token -> post-LayerNorm ->
  visual projection), for the zero-shot image score;
* the patch tokens of the intermediate layers ("stages", default 6/12/18/24 of a 24-layer
  tower, scaled for other depths) for the decoders;
* ``Ft``, text embeddings of prompts.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from synthmed.data.imageio import to_float01
from synthmed.errors import ConfigError

logger = logging.getLogger(__name__)

#: CLIP's own input normalisation (used when a model folder has no preprocessor_config.json).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def default_stage_layers(num_layers: int, num_stages: int = 4) -> list[int]:
    """Evenly spaced 1-based layer indices ending at the last layer.

    24 layers -> [6, 12, 18, 24] (seed 003); 12 -> [3, 6, 9, 12]; 4 -> [1, 2, 3, 4].
    """
    if num_layers < 1 or num_stages < 1:
        raise ConfigError(f"need at least one layer and one stage, got {num_layers} layers, {num_stages} stages")
    stages = sorted({max(1, round(num_layers * (i + 1) / num_stages)) for i in range(num_stages)})
    return stages


def check_stage_layers(layers: list[int], num_layers: int) -> list[int]:
    """Validate user-given stage layers against the tower's depth."""
    if not layers:
        raise ConfigError("stage_layers must name at least one layer")
    bad = [x for x in layers if not 1 <= x <= num_layers]
    if bad:
        raise ConfigError(f"stage_layers {layers} out of range: the vision tower has layers 1..{num_layers}")
    return list(layers)


@dataclass
class ClipBackbone:
    """A loaded CLIP model plus what is needed to feed it.

    Attributes:
        model: The ``transformers.CLIPModel``.
        tokenizer: Its tokenizer.
        source: The id or path it was loaded from.
        image_size: Input side in pixels.
        mean, std: Per-channel input normalisation.
        stage_layers: 1-based vision layers whose patch tokens feed the decoders.
    """

    model: torch.nn.Module
    tokenizer: object
    source: str
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    stage_layers: list[int]

    @property
    def vision_hidden_size(self) -> int:
        return int(self.model.config.vision_config.hidden_size)

    @property
    def projection_dim(self) -> int:
        return int(self.model.config.projection_dim)

    @property
    def num_layers(self) -> int:
        return int(self.model.config.vision_config.num_hidden_layers)

    @property
    def grid(self) -> int:
        """Patches per side."""
        return self.image_size // int(self.model.config.vision_config.patch_size)

    def preprocess(self, images: list[np.ndarray]) -> torch.Tensor:
        """Stored images -> (B, 3, S, S) float pixel values, normalised.

        Args:
            images: (H, W) uint8/uint16 grayscale or (H, W, 3) uint8 arrays, any size.
        """
        return self.normalize(self.resize(images))

    def resize(self, images: list[np.ndarray]) -> torch.Tensor:
        """Stored images -> (B, 3, S, S) float values in [0, 1] on the CPU (before normalisation)."""
        batch = []
        for img in images:
            x = torch.from_numpy(to_float01(img))
            x = x[None].expand(3, -1, -1) if x.ndim == 2 else x.permute(2, 0, 1)
            x = F.interpolate(x[None], size=(self.image_size, self.image_size), mode="bilinear",
                              align_corners=False, antialias=True)[0]
            batch.append(x)
        return torch.stack(batch)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) values in [0, 1] -> the tower's normalised input, on its device."""
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        device = next(self.model.parameters()).device
        return ((x - mean) / std).to(device)

    def image_features(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Image embedding and stage patch tokens.

        Args:
            pixel_values: (B, 3, S, S) from :meth:`preprocess`.

        Returns:
            ``Fc`` (B, C) L2-normalised image embeddings, and per stage the patch tokens
            after the tower's post-LayerNorm, each (B, grid*grid, D).
        """
        vision = self.model.vision_model
        out = vision(pixel_values=pixel_values, output_hidden_states=True)
        pooled = out.pooler_output  # (B, D): post-LayerNorm CLS token
        fc = F.normalize(self.model.visual_projection(pooled), dim=-1)
        stages = [vision.post_layernorm(out.hidden_states[k][:, 1:, :]) for k in self.stage_layers]
        return fc, stages

    @torch.no_grad()
    def text_features(self, prompts: list[str]) -> torch.Tensor:
        """(N, C) L2-normalised text embeddings of ``prompts``."""
        device = next(self.model.parameters()).device
        tok = self.tokenizer(prompts, padding="max_length", truncation=True,
                             max_length=int(self.model.config.text_config.max_position_embeddings),
                             return_tensors="pt")
        out = self.model.text_model(input_ids=tok.input_ids.to(device), attention_mask=tok.attention_mask.to(device))
        return F.normalize(self.model.text_projection(out.pooler_output), dim=-1)

    @torch.no_grad()
    def ensemble_text_features(self, normal: list[str], abnormal: list[str]) -> torch.Tensor:
        """``Ft`` (2, C): the normalised mean of each class's prompt embeddings (row 0 normal, 1 abnormal)."""
        rows = [F.normalize(self.text_features(p).mean(dim=0), dim=-1) for p in (normal, abnormal)]
        return torch.stack(rows)

    def logit_scale(self) -> float:
        return float(self.model.logit_scale.exp().clamp(max=100.0))

    def describe(self) -> dict[str, object]:
        cfg = self.model.config
        return {"source": self.source, "image_size": self.image_size, "patch_size": cfg.vision_config.patch_size,
                "vision_layers": self.num_layers, "vision_hidden_size": self.vision_hidden_size,
                "projection_dim": self.projection_dim, "stage_layers": self.stage_layers}


def _image_settings(source: str, model: torch.nn.Module) -> tuple[int, tuple, tuple]:
    size = int(model.config.vision_config.image_size)
    mean, std = CLIP_MEAN, CLIP_STD
    pre = Path(source) / "preprocessor_config.json"
    if pre.is_file():
        data = json.loads(pre.read_text(encoding="utf-8"))
        mean = tuple(data.get("image_mean", mean))
        std = tuple(data.get("image_std", std))
    return size, mean, std  # type: ignore[return-value]


def load_backbone(name_or_path: str, stage_layers: list[int] | None = None,
                  device: torch.device | str = "cpu") -> ClipBackbone:
    """Load a CLIP model by hub id or local folder as a frozen backbone.

    Raises:
        ConfigError: nothing loadable under that name (offline: no local folder), or it is
            not a CLIP model, or ``stage_layers`` is out of range.
    """
    from transformers import AutoConfig, AutoTokenizer, CLIPModel

    path = Path(name_or_path)
    if (path.is_absolute() or name_or_path.startswith(".")) and not path.exists():
        raise ConfigError(f"backbone folder {name_or_path!r} does not exist")
    try:
        config = AutoConfig.from_pretrained(name_or_path)
    except (OSError, ValueError) as err:
        hint = ("" if path.exists() else " (no local folder by that name; offline, pass a local path or build one "
                "with `synthmed localize pretrain-backbone`)")
        raise ConfigError(f"cannot load backbone {name_or_path!r}{hint}: {err}") from err
    if config.model_type != "clip":
        raise ConfigError(f"backbone {name_or_path!r} is a {config.model_type!r} model; a CLIP model is needed")
    model = CLIPModel.from_pretrained(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    model.requires_grad_(False)
    model.eval()
    model.to(device)
    n_layers = int(model.config.vision_config.num_hidden_layers)
    layers = check_stage_layers(stage_layers, n_layers) if stage_layers else default_stage_layers(n_layers)
    size, mean, std = _image_settings(name_or_path, model)
    logger.info("backbone %s: %d vision layers, stages %s, %d px input", name_or_path, n_layers, layers, size)
    return ClipBackbone(model=model, tokenizer=tokenizer, source=name_or_path, image_size=size, mean=mean, std=std,
                        stage_layers=layers)
