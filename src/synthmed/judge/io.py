"""A trained findings judge on disk: save, load by path, predict findings.

Directory layout (loadable with safetensors + json, no synthmed code needed)::

    DIR/model.safetensors      the JudgeNet weights
    DIR/config.json            JudgeNetConfig (architecture, attribute values, input size)
    DIR/real_test_metrics.json the judge's per-attribute accuracy on real test images
    DIR/synthmed.json          provenance: training config, seed, data hash, versions

Built-in judges ship inside the package and load by name, ``builtin:<name>`` wherever a
judge directory is expected (``FindingsJudge.from_pretrained("builtin:phantom-128-robust")``,
``synthmed evaluate adherence --judge builtin:phantom-128-robust``). Both shipped judges
are the ``cpu`` preset trained by ``benchmarks/bench_judge.py --n 4000`` on phantom seed 0
(2,800 training slices); fixed, validated instruments, as Inception is for FID, so
adherence figures of different runs are comparable:

* ``phantom-128-robust`` (the default of the demo): the preset with blur and noise
  augmentation, so that a degraded slice is not read as a lesion;
* ``phantom-128``: the first judge, trained before that augmentation existed. It calls
  most healthy slices "tumour" once noise of std 0.08 is added, so it overstates the
  tumours in noisy generated images. It is kept so that earlier figures can be reproduced.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from tqdm.auto import tqdm

import synthmed.utils.outdir as outdir
from synthmed.classify.data import load_images, to_channels
from synthmed.data.dataset import ImageDataset
from synthmed.data.records import DatasetRecord
from synthmed.errors import DataError
from synthmed.findings.schema import BrainMRIFindings
from synthmed.judge.model import JudgeNet, JudgeNetConfig
from synthmed.judge.targets import outputs_to_findings
from synthmed.share.card import card_after_training
from synthmed.utils.builtin import builtin_names, resolve_builtin
from synthmed.utils.configs import format_validation_error
from synthmed.utils.provenance import write_json_atomic

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
METRICS_FILE = "real_test_metrics.json"
PROVENANCE_FILE = "synthmed.json"


def builtin_judges() -> list[str]:
    """Names of the judges shipped with synthmed (``builtin:<name>``)."""
    return builtin_names("judge")


def resolve_judge(ref: str | Path) -> Path:
    """The directory of a judge given as a path or as ``builtin:<name>``.

    Raises:
        DataError: an unknown built-in name (listing the available ones).
    """
    return resolve_builtin(ref, "judge")


class FindingsJudge:
    """A :class:`JudgeNet` with its config: predicts structured findings from images.

    Example:
        >>> judge = FindingsJudge.from_pretrained("runs/judge")                # doctest: +SKIP
        >>> findings = judge.predict_dataset(ImageDataset("runs/fake"))        # doctest: +SKIP
    """

    def __init__(self, net: JudgeNet, real_test_metrics: dict[str, Any] | None = None,
                 path: Path | None = None):
        self.net = net.eval()
        self.config = net.config
        self.real_test_metrics = real_test_metrics or {}
        self.path = path

    # -- persistence -------------------------------------------------------------------
    def save_pretrained(self, out: str | Path, *, provenance: dict[str, Any] | None = None) -> Path:
        """Write weights, config, real-test metrics and provenance to ``out``."""
        from synthmed.utils.tmpfiles import save_safetensors

        out = outdir.make_locked(out)
        state = {k: v.detach().contiguous() for k, v in self.net.state_dict().items()}
        save_safetensors(state, str(out / WEIGHTS_FILE), metadata={"format": "pt", "arch": self.config.arch})
        write_json_atomic(out / CONFIG_FILE, self.config.model_dump(mode="json"))
        write_json_atomic(out / METRICS_FILE, self.real_test_metrics)
        if provenance is not None:
            write_json_atomic(out / PROVENANCE_FILE, provenance)
            card_after_training(out)
        self.path = out
        return out

    @classmethod
    def from_pretrained(cls, path: str | Path) -> FindingsJudge:
        """Load a judge directory written by ``synthmed train judge``, or ``builtin:<name>``.

        Raises:
            DataError: naming the directory or file that is missing or invalid.
        """
        from safetensors.torch import load_file

        path = resolve_judge(path)
        if not path.is_dir():
            raise DataError("judge directory not found (train one with `synthmed train judge`)", path)
        for name in (WEIGHTS_FILE, CONFIG_FILE):
            if not (path / name).is_file():
                raise DataError(f"not a judge directory: {name} is missing", path)
        try:
            config = JudgeNetConfig.model_validate(json.loads((path / CONFIG_FILE).read_text(encoding="utf-8")))
        except json.JSONDecodeError as err:
            raise DataError(f"invalid JSON ({err.msg})", path / CONFIG_FILE) from err
        except ValidationError as err:
            raise DataError(f"invalid judge config: {format_validation_error(err)}", path / CONFIG_FILE) from err
        config = config.model_copy(update={"attributes": {k: tuple(v) for k, v in config.attributes.items()}})
        net = JudgeNet(config)
        try:
            net.load_state_dict(load_file(str(path / WEIGHTS_FILE)))
        except (RuntimeError, OSError) as err:
            raise DataError(f"weights do not match config.json: {err}", path / WEIGHTS_FILE) from err
        metrics: dict[str, Any] = {}
        if (path / METRICS_FILE).is_file():
            metrics = json.loads((path / METRICS_FILE).read_text(encoding="utf-8"))
        else:
            logger.warning("%s: no %s; the judge's own accuracy is unknown", path, METRICS_FILE)
        return cls(net, metrics, path)

    def unreliable_attributes(self, min_accuracy: float) -> list[str]:
        """Attributes whose accuracy on real test images (measured at training time) is below ``min_accuracy``."""
        accuracy = self.real_test_metrics.get("accuracy", {})
        return [a for a, v in accuracy.items() if v is not None and v < min_accuracy]

    # -- inference ---------------------------------------------------------------------
    @torch.no_grad()
    def predict_outputs(self, images: torch.Tensor, batch_size: int = 64) -> dict[str, torch.Tensor]:
        """Raw outputs (logits) for (N, C, S, S) images in [0, 1] at the judge's input size."""
        self.net.eval()
        outs = [self.net(to_channels(images[i:i + batch_size], self.config.channels))
                for i in range(0, len(images), batch_size)]
        return {k: torch.cat([o[k] for o in outs]) for k in outs[0]} if outs else {}

    def predict_findings(self, images: torch.Tensor, batch_size: int = 64,
                         threshold: float | None = None) -> list[BrainMRIFindings]:
        """Findings for (N, C, S, S) images in [0, 1] at the judge's input size.

        ``threshold`` is the presence probability meaning "tumour" (default: the one set on
        the validation split at training time, ``config.presence_threshold``).
        """
        if len(images) == 0:
            return []
        threshold = self.config.presence_threshold if threshold is None else threshold
        return outputs_to_findings(self.predict_outputs(images, batch_size), self.config.attributes, threshold)

    def predict_dataset(self, ds: ImageDataset, records: Sequence[DatasetRecord] | None = None, *,
                        batch_size: int = 64, threshold: float | None = None, progress: bool = True
                        ) -> list[BrainMRIFindings]:
        """Findings for the images of ``records`` (default: every row) of a dataset.

        Images are read, padded to a square and resized to the judge's input size exactly
        as in training; ``threshold`` overrides the judge's presence threshold.
        """
        records = list(ds.records if records is None else records)
        out: list[BrainMRIFindings] = []
        chunk = 512  # bound memory: load, judge and drop images chunk by chunk
        bar = tqdm(total=len(records), desc="judge", unit="img", disable=not progress)
        for start in range(0, len(records), chunk):
            part = records[start:start + chunk]
            images = load_images(ds, part, self.config.image_size, progress=False)
            out.extend(self.predict_findings(images, batch_size, threshold))
            bar.update(len(part))
        bar.close()
        return out
