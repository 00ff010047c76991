"""``domain:<path>``: an encoder trained on the task's own real data (the "medical-domain FID").

de Wilde et al. report a medical-domain FID beside FID: the same Fréchet distance on the
features of a network trained on the medical data (a classifier's penultimate layer, an
autoencoder's encoder). Any such network plugs in through a directory:

``DIR/config.json``::

    {
      "format": "synthmed-encoder/1",
      "architecture": "conv-encoder",            # a built-in (see ARCHITECTURES), or
      "builder": "synthmed.classify.cnn:ConvTrunk",   # "module:callable" returning an nn.Module
      "config_class": "synthmed.classify.cnn:CNNConfig",  # optional: builder(config_class(**kwargs))
      "kwargs": {...},                            # constructor arguments
      "module": "trunk",                          # optional: dotted submodule whose output is the feature
      "input": {"size": 96, "channels": 1, "mean": [0.5], "std": [0.5],
                "resize": "bilinear-antialias"},
      "feature_dim": 128                          # optional; checked
    }

``DIR/model.safetensors`` — the state dict of the built module (``strict=True``).

Outputs with spatial dimensions are averaged over them; the result is flattened to (N, D).
Builders outside ``synthmed.`` run code named by a file, so they need ``trust_code=True``.
:func:`save_domain_encoder` writes the directory.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import synthmed.features.preprocess as pp
from synthmed.errors import ConfigError
from synthmed.features.base import FeatureExtractor

FORMAT = "synthmed-encoder/1"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class ConvEncoder(nn.Module):
    """A small CNN encoder: stages of (conv 3x3, BN, ReLU) x2 + max-pool, then global average pool.

    Args:
        in_channels: Input channels (1 for grayscale scans).
        widths: Channels of each stage; the feature dimension is ``widths[-1]`` (or ``dim``).
        dim: Optional linear projection of the pooled features.
    """

    def __init__(self, in_channels: int = 1, widths: Sequence[int] = (16, 32, 64), dim: int | None = None):
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for w in widths:
            layers += [nn.Conv2d(cin, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                       nn.Conv2d(w, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            cin = w
        self.features = nn.Sequential(*layers)
        self.proj = nn.Linear(cin, dim) if dim else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.features(x).mean(dim=(2, 3)))  # (B, D)


ARCHITECTURES: dict[str, type[nn.Module]] = {"conv-encoder": ConvEncoder}


def _import(ref: str, *, trust_code: bool, field: str, config: Path) -> Any:
    if ":" not in ref:
        raise ConfigError(f"{config}: '{field}' must look like 'package.module:Name', got {ref!r}")
    mod, attr = ref.split(":", 1)
    if not (mod == "synthmed" or mod.startswith("synthmed.")) and not trust_code:
        raise ConfigError(f"{config}: '{field}' names code outside synthmed ({ref!r}); pass trust_code=True "
                          "(--trust-encoder-code) if you trust this directory")
    try:
        obj = importlib.import_module(mod)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"{config}: cannot import '{field}' {ref!r}: {err}") from err
    return obj


def build_domain_module(directory: Path, cfg: dict[str, Any], *, trust_code: bool = False) -> nn.Module:
    """Build the (untrained) module a ``config.json`` describes."""
    cfg_path = directory / CONFIG_FILE
    kwargs = cfg.get("kwargs") or {}
    if "architecture" in cfg:
        arch = cfg["architecture"]
        if arch not in ARCHITECTURES:
            raise ConfigError(f"{cfg_path}: unknown architecture {arch!r}; available: {', '.join(ARCHITECTURES)} "
                              "(or give 'builder')")
        return ARCHITECTURES[arch](**kwargs)
    if "builder" not in cfg:
        raise ConfigError(f"{cfg_path}: needs 'architecture' ({', '.join(ARCHITECTURES)}) or 'builder'")
    builder = _import(cfg["builder"], trust_code=trust_code, field="builder", config=cfg_path)
    if cfg.get("config_class"):
        config_cls = _import(cfg["config_class"], trust_code=trust_code, field="config_class", config=cfg_path)
        module = builder(config_cls(**kwargs))
    else:
        module = builder(**kwargs)
    if not isinstance(module, nn.Module):
        raise ConfigError(f"{cfg_path}: builder {cfg['builder']!r} returned {type(module).__name__}, "
                          "not a torch module")
    return module


def save_domain_encoder(module: nn.Module, directory: str | Path, config: dict[str, Any]) -> Path:
    """Write ``module``'s weights and ``config`` (see the module docstring) as a domain encoder directory."""
    from synthmed.utils.tmpfiles import save_safetensors

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cfg = {"format": FORMAT, **config}
    (directory / CONFIG_FILE).write_text(json.dumps(cfg, indent=2) + "\n")
    save_safetensors({k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()},
                     str(directory / WEIGHTS_FILE))
    return directory


class DomainExtractor(FeatureExtractor):
    """``domain:<path>``: features of an encoder trained on the task's data.

    Args:
        path: The encoder directory.
        device: Torch device.
        trust_code: Allow builders outside the ``synthmed`` package.
    """

    comparable_with_published = False

    def __init__(self, path: str | Path, device: str | torch.device = "cpu", *, trust_code: bool = False):
        super().__init__(device)
        from safetensors.torch import load_file

        from synthmed.utils.provenance import hash_file

        self.path = Path(path).expanduser()
        cfg_path, w_path = self.path / CONFIG_FILE, self.path / WEIGHTS_FILE
        if not cfg_path.is_file() or not w_path.is_file():
            raise ConfigError(f"--features domain:{path}: expected a directory with {CONFIG_FILE} and {WEIGHTS_FILE} "
                              f"(see synthmed.features.domain); found {sorted(p.name for p in self.path.glob('*'))}"
                              if self.path.is_dir() else f"--features domain:{path}: directory not found")
        try:
            cfg = json.loads(cfg_path.read_text())
        except json.JSONDecodeError as err:
            raise ConfigError(f"{cfg_path}: invalid JSON ({err})") from err
        if cfg.get("format") != FORMAT:
            raise ConfigError(f"{cfg_path}: 'format' is {cfg.get('format')!r}, expected {FORMAT!r}")
        self.config = cfg
        self.name = f"domain:{self.path}"
        self.note = ("Fréchet distance on a domain encoder trained on this task's data (medical-domain FID); "
                     "comparable only with numbers computed with the same encoder weights.")
        module = build_domain_module(self.path, cfg, trust_code=trust_code)
        try:
            module.load_state_dict(load_file(str(w_path)), strict=True)
        except RuntimeError as err:
            raise ConfigError(f"{w_path} does not match the module built from {cfg_path}: {err}") from err
        for part in cfg["module"].split(".") if cfg.get("module") else []:
            if not hasattr(module, part):
                raise ConfigError(f"{cfg_path}: 'module' {cfg['module']!r}: no submodule {part!r}")
            module = getattr(module, part)
        self.model = module.eval().requires_grad_(False).to(self.device)
        inp = cfg.get("input") or {}
        size = inp.get("size", 64)
        if not (isinstance(size, int) or (isinstance(size, list) and len(size) == 2)):
            raise ConfigError(f"{cfg_path}: input.size must be an integer or [height, width], got {size!r}")
        self.size = size if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.channels = int(inp.get("channels", 1))
        self.resize = inp.get("resize", "bilinear-antialias")
        if self.resize not in pp.RESIZE_METHODS:
            raise ConfigError(f"{cfg_path}: input.resize {self.resize!r}; expected one of "
                              f"{', '.join(pp.RESIZE_METHODS)}")
        self.mean = torch.tensor(inp.get("mean", [0.0] * self.channels), dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(inp.get("std", [1.0] * self.channels), dtype=torch.float32).view(1, -1, 1, 1)
        h, w = (self.size, self.size) if isinstance(self.size, int) else self.size
        with torch.no_grad():
            probe = self.forward(torch.zeros(1, self.channels, h, w, device=self.device))[0]
        self.dim = int(probe.shape[-1])
        if cfg.get("feature_dim") not in (None, self.dim):
            raise ConfigError(f"{cfg_path}: feature_dim is {cfg['feature_dim']} but the encoder outputs {self.dim}")
        self._sha256 = hash_file(w_path)

    def weights(self) -> dict[str, Any]:
        return {"file": str(self.path / WEIGHTS_FILE), "sha256": self._sha256}

    def preprocessing(self) -> dict[str, Any]:
        return pp.describe(size=self.size, resize=self.resize, uint8_input=False, scale=1.0,
                           normalize=f"(x - {self.mean.flatten().tolist()}) / {self.std.flatten().tolist()}",
                           convention="domain encoder config.json",
                           extra={"channels": self.channels, "module": self.config.get("module")})

    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        x = pp.prepare_batch(images, size=self.size, resize=self.resize, uint8_input=False, scale=1.0,
                             channels=self.channels)
        return (x - self.mean) / self.std

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self.model(batch)
        if isinstance(out, (tuple, list)):
            out = out[0]
        if out.ndim == 4:
            out = out.mean(dim=(2, 3))
        return out.flatten(1), None
