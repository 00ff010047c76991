"""``inception``: the FID Inception-v3 extractor, its weights, and its preprocessing modes.

Weights are looked up, in order, at ``--weights PATH``, in synthmed's weights directory
(:func:`synthmed.features.paths.weights_dir`) and in torch hub's checkpoint directory (where
torch-fidelity, torchmetrics and pytorch-fid leave them), under either published name:

* ``pt_inception-2015-12-05-6726825d.pth`` (pytorch-fid release ``fid_weights``)
* ``weights-inception-2015-12-05-6726825d.pth`` (torch-fidelity release v0.2.0)

If absent, and downloads are allowed and possible, the file is downloaded once into the
weights directory. Following torch hub's naming convention, ``6726825d`` is the start of
the file's SHA-256; a file whose hash does not start with it is refused unless
``verify=False`` (then the extractor is marked not comparable with published numbers).

Preprocessing modes (all record themselves in ``metrics.json``):

* ``torch-fidelity`` — uint8 RGB, TF1-style bilinear resize to 299 in float32, (x - 128) / 128;
  also torchmetrics with ``antialias=False``;
* ``torchmetrics`` — uint8, torch bilinear with antialiasing (torchmetrics >= 1.8 default);
* ``clean-fid`` — float 0..255, PIL bicubic per channel, clipped to [0, 255], no
  re-quantisation (16-bit input is not quantised either).
"""

from __future__ import annotations

import logging
import shutil
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

import synthmed.features.paths as paths
import synthmed.features.preprocess as pp
from synthmed.errors import ConfigError
from synthmed.features.base import FeatureExtractor
from synthmed.features.inception_net import FIDInceptionV3
from synthmed.utils.tmpfiles import mkstemp_for

logger = logging.getLogger(__name__)

SHA256_PREFIX = "6726825d"
WEIGHT_URLS: dict[str, str] = {
    "pt_inception-2015-12-05-6726825d.pth":
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    "weights-inception-2015-12-05-6726825d.pth":
        "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
}
WEIGHT_FILES: tuple[str, ...] = tuple(WEIGHT_URLS)
INCEPTION_MODES: dict[str, dict[str, Any]] = {
    "torch-fidelity": {"resize": "tf1-bilinear", "uint8_input": True, "truncate_float": False},
    "torchmetrics": {"resize": "bilinear-antialias", "uint8_input": True, "truncate_float": True},
    "clean-fid": {"resize": "pil-bicubic", "uint8_input": False, "truncate_float": False},
}


def _sha256(path: Path) -> str:
    from synthmed.utils.provenance import hash_file

    return hash_file(path)


def search_dirs() -> list[Path]:
    """Directories searched for the Inception weights, in order."""
    return [paths.weights_dir(), Path(torch.hub.get_dir()) / "checkpoints"]


def missing_weights_message() -> str:
    name, url = next(iter(WEIGHT_URLS.items()))
    return (f"the FID Inception weights are not available. Download {name} from {url} "
            f"(or torch-fidelity's copy, {WEIGHT_FILES[1]}) and put it in {paths.weights_dir()} "
            f"(or set SYNTHMED_WEIGHTS_DIR), or pass --weights PATH. Offline alternative: "
            f"--features efficientnet-lite0 (not comparable with published FIDs).")


def find_inception_weights() -> Path | None:
    """A local copy of the FID Inception weights, or None."""
    for d in search_dirs():
        for name in WEIGHT_FILES:
            if (d / name).is_file():
                return d / name
    return None


def download_inception_weights(dest_dir: Path | None = None, timeout: float = 60.0) -> Path:
    """Download the weights into ``dest_dir`` (default: the weights dir), checking the SHA-256 prefix.

    Raises:
        ConfigError: offline (``SYNTHMED_OFFLINE``/``HF_HUB_OFFLINE``), unreachable, or a bad checksum.
    """
    if paths.offline():
        raise ConfigError("downloads are disabled (SYNTHMED_OFFLINE/HF_HUB_OFFLINE); " + missing_weights_message())
    dest_dir = Path(dest_dir or paths.weights_dir())
    dest_dir.mkdir(parents=True, exist_ok=True)
    errors = []
    for name, url in WEIGHT_URLS.items():
        logger.info("downloading %s", url)
        fd, tmp = mkstemp_for(dest_dir, suffix=".pth")
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(fd, "wb") as fh:
                shutil.copyfileobj(resp, fh)
            digest = _sha256(Path(tmp))
            if not digest.startswith(SHA256_PREFIX):
                raise ConfigError(f"downloaded {url} has SHA-256 {digest}, expected it to start with {SHA256_PREFIX}")
            final = dest_dir / name
            Path(tmp).replace(final)
            return final
        except (OSError, ConfigError) as err:
            errors.append(f"{url}: {err}")
        finally:
            Path(tmp).unlink(missing_ok=True)
    raise ConfigError("could not download the Inception weights (" + "; ".join(errors) + "); "
                      + missing_weights_message())


def resolve_inception_weights(weights: str | Path | None = None, *, allow_download: bool = False) -> Path:
    """The weights file to use: ``weights`` if given, else a local copy, else a download if allowed."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ConfigError(f"--weights: Inception weights file not found: {path}. " + missing_weights_message())
        return path
    found = find_inception_weights()
    if found is not None:
        return found
    if allow_download:
        return download_inception_weights()
    raise ConfigError(missing_weights_message())


def load_inception_state(path: Path) -> dict[str, torch.Tensor]:
    """Load a state dict and check it has exactly the FID Inception layout (``num_batches_tracked`` optional)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means "not this file"
        raise ConfigError(f"{path}: not a readable PyTorch state dict ({err})") from err
    if not isinstance(state, dict):
        raise ConfigError(f"{path}: expected a state dict, got {type(state).__name__}")
    expected = {k: v.shape for k, v in FIDInceptionV3().state_dict().items() if not k.endswith("num_batches_tracked")}
    got = {k: v.shape for k, v in state.items() if not k.endswith("num_batches_tracked")}
    missing, unexpected = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(expected) & set(got) if tuple(expected[k]) != tuple(got[k]))
    if missing or unexpected or wrong:
        raise ConfigError(f"{path} does not have the FID Inception-v3 layout: {len(missing)} missing keys "
                          f"{missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}, wrong shapes {wrong[:3]}")
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


class InceptionExtractor(FeatureExtractor):
    """``inception``: 2048-d pool3 features and 1008 unbiased logits of the FID Inception-v3.

    Args:
        weights: Path of the weights file (default: search, then download if allowed).
        mode: Preprocessing convention, one of :data:`INCEPTION_MODES`.
        device: Torch device.
        allow_download: Download the weights when no local copy exists (never when offline).
        verify: Refuse a file whose SHA-256 does not start with ``6726825d``.
    """

    name = "inception"
    dim = 2048

    def __init__(self, weights: str | Path | None = None, *, mode: str = "torch-fidelity",
                 device: str | torch.device = "cpu", allow_download: bool = False, verify: bool = True):
        super().__init__(device)
        if mode not in INCEPTION_MODES:
            raise ConfigError(f"--preprocessing: unknown Inception mode {mode!r}; available: "
                              f"{', '.join(INCEPTION_MODES)}")
        self.mode = mode
        self.weights_path = resolve_inception_weights(weights, allow_download=allow_download)
        self._sha256 = _sha256(self.weights_path)
        self.verified = self._sha256.startswith(SHA256_PREFIX)
        if verify and not self.verified:
            raise ConfigError(f"{self.weights_path}: SHA-256 {self._sha256} does not start with {SHA256_PREFIX}; "
                              "this is not the FID Inception file (pass verify=False / --no-verify-weights to use "
                              "it anyway, its numbers will be marked not comparable)")
        self.comparable_with_published = self.verified
        self.note = ("TF Inception-v3 (2015-12-05) pool3 features, as torch-fidelity / torchmetrics / clean-fid; "
                     f"preprocessing '{mode}'." if self.verified else
                     "Inception-v3 architecture with UNVERIFIED weights: not comparable with published FIDs.")
        self.model = FIDInceptionV3()
        self.model.load_state_dict(load_inception_state(self.weights_path), strict=False)
        self.model.eval().requires_grad_(False).to(self.device)

    @property
    def provides_logits(self) -> bool:
        return True

    def weights(self) -> dict[str, Any]:
        return {"file": self.weights_path.name, "sha256": self._sha256, "checksum_verified": self.verified}

    def preprocessing(self) -> dict[str, Any]:
        m = INCEPTION_MODES[self.mode]
        extra = {"float_to_uint8": "truncate" if m["truncate_float"] else "round"} if m["uint8_input"] else {}
        return pp.describe(size=299, resize=m["resize"], uint8_input=m["uint8_input"], scale=255.0,
                           normalize="(x - 128) / 128", convention=self.mode, extra=extra)

    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        m = INCEPTION_MODES[self.mode]
        x = pp.prepare_batch(images, size=299, resize=m["resize"], uint8_input=m["uint8_input"], scale=255.0,
                             truncate_float=m["truncate_float"])
        return (x - 128) / 128

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.model(batch)


def inception_available() -> bool:
    """Whether the FID Inception weights are present locally (no download attempted)."""
    return find_inception_weights() is not None
