"""A small lesion segmenter: a U-Net (Ronneberger et al. 2015) that maps a slice to a lesion probability map.

It is the "model trained on real images" that reads where a generated image put its lesion
(``synthmed evaluate mask-adherence``) and the network of the localisation TSTR protocol:
small enough to train on a CPU in minutes, with nothing pretrained.

Saved as ``config.json`` (architecture, input size, the calibrated threshold) and
``model.safetensors``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from synthmed.errors import DataError
from synthmed.utils.tmpfiles import apply_umask, save_safetensors

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class SegmenterConfig(BaseModel):
    """Architecture and input of a :class:`LesionSegmenter`.

    Attributes:
        channels: Width of each resolution level (each after the first halves the resolution).
        in_channels: 1 for grayscale slices.
        resolution: Side the model reads; images are resized to it and maps back to theirs.
        threshold: Probability above which a pixel is lesion (calibrated on a validation split).
    """

    model_config = ConfigDict(extra="forbid")

    channels: tuple[int, ...] = (16, 32, 64, 128)
    in_channels: int = Field(1, ge=1)
    resolution: int = Field(128, ge=16)
    threshold: float = Field(0.5, gt=0, lt=1)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    groups = 8 if c_out % 8 == 0 else 1
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(groups, c_out), nn.SiLU(),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.GroupNorm(groups, c_out), nn.SiLU())


class LesionSegmenter(nn.Module):
    """U-Net: two convolutions per level, max-pool down, bilinear up with skip connections; one logit per pixel."""

    def __init__(self, config: SegmenterConfig):
        super().__init__()
        self.config = config
        ch = config.channels
        self.down = nn.ModuleList([_block(config.in_channels if i == 0 else ch[i - 1], c) for i, c in enumerate(ch)])
        self.up = nn.ModuleList([_block(ch[i] + ch[i - 1], ch[i - 1]) for i in range(len(ch) - 1, 0, -1)])
        self.head = nn.Conv2d(ch[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images in [0, 1] -> (B, 1, H, W) lesion logits (H, W divisible by 2^(levels-1))."""
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)

    @torch.no_grad()
    def predict(self, images01: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """(N, H, W) float images in [0, 1] -> (N, H, W) lesion probabilities at the images' size."""
        self.eval()
        device = next(self.parameters()).device
        out = []
        side = self.config.resolution
        for start in range(0, len(images01), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images01[start:start + batch_size], np.float32))[:, None]
            size = x.shape[-2:]
            if tuple(size) != (side, side):
                x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
            p = torch.sigmoid(self(x.to(device)).float())
            if tuple(size) != (side, side):
                p = F.interpolate(p, size=tuple(size), mode="bilinear", align_corners=False)
            out.append(p[:, 0].cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, *images01.shape[1:]), np.float32)

    def save_pretrained(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_safetensors({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()},
                         str(folder / WEIGHTS_FILE))
        (folder / CONFIG_FILE).write_text(json.dumps({"model_type": "synthmed-lesion-segmenter",
                                                      **self.config.model_dump(mode="json")}, indent=2) + "\n")
        apply_umask(folder)
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> LesionSegmenter:
        """Load a segmenter saved by :meth:`save_pretrained`.

        Raises:
            DataError: the folder is not a segmenter (no config.json / model.safetensors, another model type).
        """
        from safetensors.torch import load_file

        folder = Path(folder)
        cfg_path = folder / CONFIG_FILE
        if not cfg_path.is_file() or not (folder / WEIGHTS_FILE).is_file():
            raise DataError(f"not a lesion segmenter: expected {CONFIG_FILE} and {WEIGHTS_FILE} "
                            "(synthmed train segmenter)", folder)
        raw = json.loads(cfg_path.read_text())
        if raw.pop("model_type", None) != "synthmed-lesion-segmenter":
            raise DataError("config.json is not a synthmed lesion segmenter's", cfg_path)
        model = cls(SegmenterConfig.model_validate(raw))
        model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
        return model.eval()
