"""A trained localiser: backbone + stage decoders + fixed text features, saved as a model folder.

Folder layout (``synthmed localize train`` writes it; :func:`load_localizer` reads it)::

    config.json              LocalizerConfig: backbone reference, stages, threshold, prompts
    decoders.safetensors     decoder weights and the text features Ft ("text_features", (2, C))
    backbone/                the CLIP folder, when it was pretrained here or partly trained
    synthmed.json            provenance: training config, data hash, calibration metrics
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict

from synthmed.errors import ConfigError
from synthmed.localize.backbone import ClipBackbone, load_backbone
from synthmed.localize.model import StageDecoders, combine_stages, image_scores, map_maxima, zero_shot_score

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "decoders.safetensors"


class LocalizerConfig(BaseModel):
    """What a saved localiser needs besides its weights."""

    model_config = ConfigDict(extra="forbid")

    backbone: str
    stage_layers: list[int]
    image_size: int
    temperature: float = 0.07
    decoder_hidden: int | None = None
    center_text: bool = False
    image_score: str = "zero-shot"
    test_time_flip: bool = False
    test_time_shift: int = 0
    threshold: float = 0.5
    normal_prompts: list[str]
    abnormal_prompts: list[str]


@dataclass
class LocalizerOutput:
    """The localiser's answer for one image.

    Attributes:
        anomaly_map: (H, W) float32 abnormal probability in [0, 1].
        zero_shot: The zero-shot image score ``softmax(Fc · Ftᵀ)[abnormal]``.
        map_max: The maximum of the anomaly map.
        image_score: The score of the configured ``image_score`` mode.
    """

    anomaly_map: np.ndarray
    zero_shot: float
    map_max: float
    image_score: float


class Localizer:
    """Pixel anomaly maps and image scores for images (see :mod:`synthmed.localize.model`)."""

    def __init__(self, config: LocalizerConfig, backbone: ClipBackbone, decoders: StageDecoders, text: torch.Tensor):
        self.config = config
        self.backbone = backbone
        self.decoders = decoders.eval()
        self.text = text

    def _maps_and_zero_shot(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S, S) anomaly maps and (B,) zero-shot scores of preprocessed (B, 3, S, S) pixels."""
        size = self.backbone.image_size
        fc, stages = self.backbone.image_features(pixels)
        maps = combine_stages(self.decoders.stage_probs(stages, self.text, (size, size)))
        return maps, zero_shot_score(fc, self.decoders.joint_text(self.text), self.backbone.logit_scale())

    def _view_average(self, pixels: torch.Tensor, flip: bool, shift: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Maps and zero-shot scores averaged over the :func:`prediction_views`, each map moved back first."""
        all_maps, all_zs = [], []
        for mirror, dy, dx in prediction_views(flip, shift):
            view = pixels.flip(-1) if mirror else pixels
            maps, zs = self._maps_and_zero_shot(view.roll((dy, dx), dims=(-2, -1)))
            maps = maps.roll((-dy, -dx), dims=(-2, -1))
            all_maps.append(maps.flip(-1) if mirror else maps)
            all_zs.append(zs)
        return torch.stack(all_maps).mean(dim=0), torch.stack(all_zs).mean(dim=0)

    @torch.no_grad()
    def predict(self, images: list[np.ndarray], *, out_size: bool = True, test_time_flip: bool | None = None,
                test_time_shift: int | None = None) -> list[LocalizerOutput]:
        """Maps and scores for a batch of stored images (any size; grayscale or RGB).

        Args:
            images: (H, W) uint8/uint16 or (H, W, 3) uint8 arrays.
            out_size: Return each map at its image's size (else at the backbone's input size).
            test_time_flip: Also look at each image's left-right mirror (see :func:`prediction_views`).
                None = the localiser's ``test_time_flip`` setting.
            test_time_shift: Also look at the image shifted by this many input pixels up, down,
                left and right. None = the localiser's ``test_time_shift`` setting.
        """
        size = self.backbone.image_size
        flip = self.config.test_time_flip if test_time_flip is None else test_time_flip
        shift = self.config.test_time_shift if test_time_shift is None else test_time_shift
        maps, zs = self._view_average(self.backbone.preprocess(images), flip, shift)  # (B, S, S), (B,)
        maxima = map_maxima(maps)
        scores = image_scores(zs, maxima, self.config.image_score)
        results = []
        for img, m, z, mmax, score in zip(images, maps, zs, maxima, scores, strict=True):
            if out_size and tuple(img.shape[:2]) != (size, size):
                m = F.interpolate(m[None, None], size=img.shape[:2], mode="bilinear", align_corners=False)[0, 0]
            results.append(LocalizerOutput(m.clamp(0, 1).cpu().numpy().astype(np.float32), float(z), float(mmax),
                                           float(score)))
        return results


def prediction_views(flip: bool, shift: int) -> list[tuple[bool, int, int]]:
    """The views a prediction averages, as (mirrored, dy, dx): the image, its four shifts, and their mirrors.

    Not in seed 003. Each view's anomaly map is moved back (rolled, mirrored) before the maps
    are averaged, the zero-shot scores are averaged, and the map maximum is taken on the
    average. A shift smaller than the ViT's patch puts the patch grid at other phases, so a
    small lesion cut by patch borders in one view is whole in another (on the phantom,
    shifts of a quarter patch raised held-out image AUROC the most: docs/localization.md).
    Shifts roll the image, so the rows or columns pushed out come back on the other side.
    """
    if shift < 0:
        raise ValueError(f"test_time_shift must be >= 0, got {shift}")
    shifts = [(0, 0)] + ([(shift, 0), (-shift, 0), (0, shift), (0, -shift)] if shift else [])
    return [(mirror, dy, dx) for mirror in ((False, True) if flip else (False,)) for dy, dx in shifts]


def save_localizer(out: str | Path, localizer: Localizer) -> None:
    """Write ``config.json`` and ``decoders.safetensors`` to ``out`` (the backbone is saved by the trainer)."""
    from synthmed.utils.tmpfiles import save_safetensors

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {f"decoders.{k}": v.detach().cpu().contiguous() for k, v in localizer.decoders.state_dict().items()}
    tensors["text_features"] = localizer.text.detach().cpu().contiguous()
    save_safetensors(tensors, str(out / WEIGHTS_FILE))
    (out / CONFIG_FILE).write_text(json.dumps(localizer.config.model_dump(mode="json"), indent=2) + "\n",
                                   encoding="utf-8")


def load_localizer(model_dir: str | Path, device: torch.device | str = "cpu") -> Localizer:
    """Load a localiser folder written by ``synthmed localize train``.

    Raises:
        ConfigError: the folder, its config or weights are missing or invalid, or its
            backbone cannot be loaded.
    """
    from safetensors.torch import load_file

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ConfigError(f"localiser folder {model_dir} does not exist")
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (model_dir / name).is_file():
            raise ConfigError(f"{model_dir} has no {name}; is it a localiser from `synthmed localize train`?")
    try:
        config = LocalizerConfig.model_validate_json((model_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    except ValueError as err:
        raise ConfigError(f"{model_dir / CONFIG_FILE}: invalid localiser config: {err}") from err
    local = model_dir / config.backbone
    backbone_src = str(local) if local.is_dir() else config.backbone
    backbone = load_backbone(backbone_src, config.stage_layers, device=device)
    if backbone.image_size != config.image_size:
        raise ConfigError(f"backbone {backbone_src} takes {backbone.image_size} px but the localiser was trained "
                          f"at {config.image_size} px")
    tensors = load_file(str(model_dir / WEIGHTS_FILE))
    text = tensors.pop("text_features").to(device)
    decoders = StageDecoders(len(config.stage_layers), backbone.vision_hidden_size, backbone.projection_dim,
                             config.decoder_hidden, config.temperature, config.center_text)
    try:
        decoders.load_state_dict({k.removeprefix("decoders."): v for k, v in tensors.items()})
    except RuntimeError as err:
        raise ConfigError(f"{model_dir / WEIGHTS_FILE} does not match its config and backbone: {err}") from err
    return Localizer(config, backbone, decoders.to(device), text)
