"""The findings judge network: where is the lesion, and what does it look like?

A small U-Net (Ronneberger et al. 2015) predicts a lesion map at 1/4 (or 1/2) of the
input resolution. The map serves three ends:

* presence: the image-level tumour logit is the calibrated *maximum* of the map
  (multiple-instance pooling), so "is there a tumour" and "where is it" are the same
  evidence;
* attention: a softmax over the map pools the features under the lesion, which feed the
  attribute heads (intensity, shape, size, orientation, edema, mass effect);
* location: the attention-weighted centroid (x, y) and a coarse whole-slice layout vector
  (the flattened bottleneck) feed the hemisphere and lobe heads;
* geometry: image moments of the lesion probability map — its area, the normalised
  second moments (elongation and the long axis' direction) and its boundary length
  relative to the area (compactness) — feed the size, orientation and shape heads, which
  pooled local features alone cannot see.

Coordinate channels (CoordConv, Liu et al. 2018) make the features position-aware. When
masks are available the map is supervised densely, which is what lets the judge train in
minutes on a CPU; rows without a mask train presence and the heads only.

Every head is a linear layer over a shared hidden vector; its loss is masked (ignore
index -1) where the reference does not state the attribute (no tumour, or orientation of a
round tumour).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from synthmed.classify.cnn import _coords
from synthmed.findings.schema import BRAIN_ATTRIBUTE_VALUES

#: The attributes a judge predicts besides presence, with their values (head class order).
DEFAULT_ATTRIBUTES: dict[str, tuple[object, ...]] = {
    name: BRAIN_ATTRIBUTE_VALUES[name] for name in
    ("hemisphere", "lobe", "size_category", "shape", "intensity", "orientation", "edema", "mass_effect")
}


class JudgeNetConfig(BaseModel):
    """Architecture of :class:`JudgeNet` (saved as the model directory's ``config.json``).

    Attributes:
        image_size: Input side in pixels; a multiple of 16.
        channels: Input channels (1 grayscale, 3 RGB).
        widths: Channels of the five encoder levels (strides 1, 2, 4, 8 and 16).
        convs: 3x3 convolutions in each encoder level (fewer at high resolution is faster).
        hidden: Width of the shared vector the attribute heads read.
        dropout: Dropout before the heads.
        map_stride: Input pixels per lesion-map cell, 4 or 2 (one more decoder level: finer
            maps for lesions only a few pixels wide, at about 1.3x the training time).
        attributes: Attribute name -> its values, in head-output order.
        presence_threshold: Presence probability meaning "tumour"; set on the validation
            split after training (the value that maximises validation accuracy).
    """

    model_config = ConfigDict(extra="forbid")

    arch: str = "unet-judge"
    image_size: int = Field(128, ge=32)
    channels: int = Field(1, ge=1)
    widths: tuple[int, int, int, int, int] = (8, 16, 32, 64, 64)
    convs: tuple[int, int, int, int, int] = (1, 1, 2, 2, 2)
    hidden: int = Field(128, ge=8)
    dropout: float = Field(0.2, ge=0, lt=1)
    map_stride: Literal[2, 4] = 4
    attributes: dict[str, tuple[object, ...]] = Field(default_factory=lambda: dict(DEFAULT_ATTRIBUTES))
    presence_threshold: float = Field(0.5, gt=0, lt=1)

    @model_validator(mode="after")
    def _check(self) -> JudgeNetConfig:
        if any(n < 1 for n in self.convs):
            raise ValueError(f"every encoder level needs at least one convolution, got convs={list(self.convs)}")
        if self.image_size % 16:
            raise ValueError(f"image_size must be a multiple of 16, got {self.image_size}")
        for name, values in self.attributes.items():
            if len(values) < 2:
                raise ValueError(f"attribute {name!r} needs at least two values, got {list(values)}")
        return self

    @property
    def map_size(self) -> int:
        """Side of the lesion map (1/map_stride of the input)."""
        return self.image_size // self.map_stride


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _level(cin: int, cout: int, n: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.MaxPool2d(2)] if pool else []
    return nn.Sequential(*layers, _conv(cin, cout), *(_conv(cout, cout) for _ in range(n - 1)))


def _geometry(lesion_map: torch.Tensor) -> torch.Tensor:
    """(B, 6) bounded shape descriptors of the lesion probability map (image moments, Hu 1962).

    From the central second moments mu20, mu02, mu11 of p = sigmoid(map): log area; the
    spread sqrt(mu20 + mu02) over the map side (size); the elongation along x versus y,
    (mu20 - mu02) / (mu20 + mu02), and along the diagonals, 2 mu11 / (mu20 + mu02), both in
    [-1, 1] (long-axis direction); the boundary length (total variation of p) over
    4 sqrt(area), about 1 for a compact blob and larger for lobulated or irregular outlines;
    and the largest cell probability. Every value is bounded, so an empty map (a healthy
    slice) cannot produce huge inputs.
    """
    p = torch.sigmoid(lesion_map[:, 0])  # (B, h, w)
    h, w = p.shape[-2:]
    mass = p.sum(dim=(1, 2))
    area = mass.clamp_min(1.0)  # in cells
    ys = torch.arange(h, dtype=p.dtype, device=p.device).view(1, h, 1)
    xs = torch.arange(w, dtype=p.dtype, device=p.device).view(1, 1, w)
    cy = (p * ys).sum(dim=(1, 2)) / area
    cx = (p * xs).sum(dim=(1, 2)) / area
    dy, dx = ys - cy.view(-1, 1, 1), xs - cx.view(-1, 1, 1)
    mu20 = (p * dx * dx).sum(dim=(1, 2)) / area
    mu02 = (p * dy * dy).sum(dim=(1, 2)) / area
    mu11 = (p * dx * dy).sum(dim=(1, 2)) / area
    spread = (mu20 + mu02).clamp_min(1e-6)
    boundary = (p[:, 1:] - p[:, :-1]).abs().sum(dim=(1, 2)) + (p[:, :, 1:] - p[:, :, :-1]).abs().sum(dim=(1, 2))
    return torch.stack([
        torch.log1p(mass), spread.sqrt() / max(h, w), (mu20 - mu02) / spread, 2 * mu11 / spread,
        (boundary / (4 * area.sqrt())).clamp(max=10.0), p.flatten(1).amax(dim=1),
    ], dim=1)


def _resample_attention(attn: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """An attention map (B, 1, h, w) summing to 1, resampled to ``size`` and still summing to 1."""
    if attn.shape[-2:] == size:
        return attn
    mode = "area" if attn.shape[-1] > size[-1] else "nearest"
    out = F.interpolate(attn, size=size, mode=mode)
    return out / out.sum(dim=(2, 3), keepdim=True)


class JudgeNet(nn.Module):
    """(B, C, S, S) images in [0, 1] -> dict of logits.

    Outputs:
        "lesion_map": (B, 1, S/m, S/m) lesion logits (m = ``config.map_stride``);
        "tumor_present": (B,) presence logit (the map's calibrated maximum);
        one (B, K) tensor per attribute of ``config.attributes``.
    """

    def __init__(self, config: JudgeNetConfig):
        super().__init__()
        self.config = config
        c = config
        w0, w1, w2, w3, w4 = c.widths
        # Encoder (U-Net, Ronneberger et al. 2015), strides 1 to 16.
        n0, n1, n2, n3, n4 = c.convs
        self.enc0 = _level(c.channels + 2, w0, n0, pool=False)  # (B, w0, S, S)
        self.enc1 = _level(w0, w1, n1, pool=True)  # (B, w1, S/2, S/2)
        self.enc2 = _level(w1, w2, n2, pool=True)  # (B, w2, S/4, S/4)
        self.enc3 = _level(w2, w3, n3, pool=True)  # (B, w3, S/8, S/8)
        self.enc4 = _level(w3, w4, n4, pool=True)  # (B, w4, S/16, S/16)
        # Decoder back to stride 4 with skip connections.
        self.dec3 = _conv(w4 + w3, w3)  # (B, w3, S/8, S/8)
        self.dec2 = _conv(w3 + w2, w2)  # (B, w2, S/4, S/4)
        self.dec1 = _conv(w2 + w1, w1) if c.map_stride == 2 else None  # (B, w1, S/2, S/2)
        self.lesion = nn.Conv2d(w1 if self.dec1 is not None else w2, 1, 1)
        # Presence = a * max(lesion map) + b: the map's maximum, calibrated.
        self.presence_scale = nn.Parameter(torch.ones(1))
        self.presence_bias = nn.Parameter(torch.zeros(1))
        side = c.image_size // 16
        self.layout = nn.Sequential(nn.Flatten(), nn.Linear(w4 * side * side, 64), nn.ReLU(inplace=True))
        pooled = w2 + w1 + 2 + 64 + w4 + 6  # lesion features (2 scales), centroid, layout, global, geometry
        if self.dec1 is not None:
            pooled += w1  # the stride-2 decoder's features under the lesion
        self.shared = nn.Sequential(nn.Linear(pooled, c.hidden), nn.ReLU(inplace=True), nn.Dropout(c.dropout))
        self.heads = nn.ModuleDict({name: nn.Linear(c.hidden, len(values)) for name, values in c.attributes.items()})
        self.to(memory_format=torch.channels_last)  # ~1.5x faster convolutions on CPUs (oneDNN)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        lesion_map, hidden = self._trunk(x)
        peak = lesion_map.flatten(1).amax(dim=1)  # (B,)
        out = {"lesion_map": lesion_map, "tumor_present": peak * self.presence_scale + self.presence_bias}
        out.update({name: head(hidden) for name, head in self.heads.items()})
        return out

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, hidden) findings embedding: the vector every attribute head reads (a domain feature space)."""
        return self._trunk(x)[1]

    def _trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        if x.ndim != 4 or x.shape[1] != c.channels or x.shape[-1] != c.image_size or x.shape[-2] != c.image_size:
            raise ValueError(f"expected images of shape (B, {c.channels}, {c.image_size}, {c.image_size}), "
                             f"got {tuple(x.shape)}")
        x = torch.cat([x, _coords(x)], dim=1).contiguous(memory_format=torch.channels_last)
        e1 = self.enc1(self.enc0(x))  # (B, w1, S/2, S/2)
        e2 = self.enc2(e1)  # (B, w2, S/4, S/4)
        e3 = self.enc3(e2)  # (B, w3, S/8, S/8)
        e4 = self.enc4(e3)  # (B, w4, S/16, S/16)
        d3 = self.dec3(torch.cat([F.interpolate(e4, scale_factor=2.0), e3], dim=1))
        f = self.dec2(torch.cat([F.interpolate(d3, scale_factor=2.0), e2], dim=1))  # (B, w2, S/4, S/4)
        fine = None if self.dec1 is None else self.dec1(torch.cat([F.interpolate(f, scale_factor=2.0), e1], dim=1))
        lesion_map = self.lesion(f if fine is None else fine)  # (B, 1, S/m, S/m)
        # Where to look (sums to 1). Detached: the heads shape the features they pool, not the
        # map itself, which the dense lesion loss and presence train.
        attn = lesion_map.detach().flatten(1).softmax(dim=1).view_as(lesion_map)
        attn4, attn2 = _resample_attention(attn, f.shape[-2:]), _resample_attention(attn, e1.shape[-2:])
        centroid = (attn * _coords(attn)).sum(dim=(2, 3))  # (B, 2): x, y in [-1, 1]
        pooled = [(attn4 * f).sum(dim=(2, 3)), (attn2 * e1).sum(dim=(2, 3))]
        if fine is not None:
            pooled.append((attn * fine).sum(dim=(2, 3)))
        feats = torch.cat([*pooled, centroid, self.layout(e4.contiguous()), e4.mean(dim=(2, 3)),
                           _geometry(lesion_map.detach())], dim=1)
        return lesion_map, self.shared(feats)
