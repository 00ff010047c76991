"""The Generate tab's work: findings -> prompt -> images, each read back by the judge; a selection -> a dataset."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synthmed.app.models import AppModels
from synthmed.errors import ConfigError
from synthmed.findings.render import render_text
from synthmed.findings.schema import BrainMRIFindings

#: The form's "not stated" choice for an optional attribute.
ANY = "any"
#: The attributes the form sets, in the order the form shows them.
FORM_ATTRIBUTES = ("hemisphere", "lobe", "size_category", "shape", "intensity", "edema", "orientation")
MAX_IMAGES = 16


def findings_from_form(tumor_present: bool, hemisphere: str = ANY, lobe: str = ANY, size_category: str = ANY,
                       shape: str = ANY, intensity: str = ANY, edema: str = ANY,
                       orientation: str = ANY) -> BrainMRIFindings:
    """The findings the form states (``any`` leaves an attribute unset; no tumour unsets them all).

    Raises:
        ConfigError: a value outside the findings schema, naming the field.
    """
    from pydantic import ValidationError

    if not tumor_present:
        return BrainMRIFindings(tumor_present=False)
    values = {"hemisphere": hemisphere, "lobe": lobe, "size_category": size_category, "shape": shape,
              "intensity": intensity, "orientation": orientation}
    stated = {k: v for k, v in values.items() if v not in (None, "", ANY)}
    if edema not in (None, "", ANY):
        stated["edema"] = edema in (True, "yes", "true")
    try:
        return BrainMRIFindings(tumor_present=True, **stated)
    except ValidationError as err:
        bad = err.errors()[0]
        raise ConfigError(f"{bad['loc'][0]}: {bad['msg']}") from err


def prompt_for(findings: BrainMRIFindings) -> str:
    """The prompt the project's captioners would write for ``findings`` (the training captions' style)."""
    return render_text(findings)


@dataclass
class GeneratedImage:
    """One generated image with what was asked and what the judge reads in it."""

    image: np.ndarray
    seed: int
    prompt: str
    requested: BrainMRIFindings | None
    read: BrainMRIFindings | None = None
    disagreements: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    reliable: tuple[str, ...] | None = None
    sampling: dict = field(default_factory=dict)
    #: The lesion mask the image was drawn around (a mask-conditioned model), else None.
    mask: np.ndarray | None = None

    def shown(self) -> np.ndarray:
        """The image as the gallery shows it: with the requested lesion outlined in red when there is one."""
        if self.mask is None or not self.mask.any():
            return self.image
        from synthmed.viz import overlay_outline

        return overlay_outline(self.image, self.mask)

    def caption(self, index: int) -> str:
        """``#1 · ✗ lobe (asked parietal, read frontal) · judge: tumour, left frontal · seed 123``."""
        parts = [f"#{index + 1}"]
        parts += [f"✗ {d}" for d in self.disagreements] or (["✓ as asked"] if self.read and self.requested else [])
        if self.read is not None:
            parts.append("judge: " + describe(self.read, self.reliable))
        return " · ".join([*parts, f"seed {self.seed}"])


def describe(f: BrainMRIFindings, attributes: tuple[str, ...] | None = None) -> str:
    """``large round tumour, left frontal`` (only ``attributes``, when given)."""
    if not f.tumor_present:
        return "no tumour"

    def get(a: str):
        return getattr(f, a) if attributes is None or a in attributes else None

    words = [get("size_category"), get("shape"), get("intensity"), "tumour"]
    where = " ".join(x for x in (get("hemisphere"), get("lobe")) if x)
    return " ".join(str(w) for w in words if w) + (f", {where}" if where else "")


def disagreements(requested: BrainMRIFindings, read: BrainMRIFindings, attributes: tuple[str, ...]) -> list[str]:
    """Attributes the request states and the judge reads differently: ``lobe (asked parietal, read frontal)``."""
    out = []
    if requested.tumor_present != read.tumor_present:
        return [f"tumour presence (asked {'tumour' if requested.tumor_present else 'none'}, read "
                f"{'tumour' if read.tumor_present else 'none'})"]
    if not requested.tumor_present:
        return out
    for a in attributes:
        want, got = getattr(requested, a, None), getattr(read, a, None)
        if a != "tumor_present" and want is not None and got is not None and want != got:
            out.append(f"{a} (asked {want}, read {got})")
    return out


def generate_images(models: AppModels, prompt: str, requested: BrainMRIFindings | None, *, n: int, seed: int,
                    steps: int, guidance_scale: float, scheduler: str, progress=None) -> list[GeneratedImage]:
    """``n`` images of ``prompt``; image ``i`` is seeded as ``synthmed generate --seed seed`` seeds its image ``i``.

    A mask-conditioned model (``train ldm --condition mask``) draws image ``i`` around the lesion
    mask and head that ``synthmed generate --masks-from-findings`` draws for it (same seed, same mask).

    Args:
        progress: Called with (done, total) after each image.

    Raises:
        ConfigError: an empty prompt, a bad count or sampler, or no generator.
    """
    from synthmed.data.phantom.masks import lesion_layout
    from synthmed.generate.run import image_seed, sample_images
    from synthmed.generate.schedulers import check_scheduler_name

    if not prompt or not prompt.strip():
        raise ConfigError("the prompt is empty")
    if not 1 <= n <= MAX_IMAGES:
        raise ConfigError(f"number of images must be 1-{MAX_IMAGES}, got {n}")
    if steps < 1:
        raise ConfigError(f"steps must be at least 1, got {steps}")
    check_scheduler_name(scheduler)
    condition = models.mask_condition()
    if condition is not None and requested is None:
        raise ConfigError("this model draws each slice around a lesion mask taken from the form's findings; keep "
                          "the prompt the form writes (an edited prompt states no findings to draw a mask from)")
    pipe = models.pipeline(scheduler)
    noise = models.noise()
    side = int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)
    out: list[GeneratedImage] = []
    for i in range(n):
        s = image_seed(seed, i)
        layout = lesion_layout(requested, size=side, seed=s) if condition is not None else None
        ((image, extra),) = sample_images(pipe, [prompt], [s], steps=steps, guidance_scale=guidance_scale,
                                          noise=noise, lesions=[layout.lesion] if layout else None,
                                          heads=[layout.head] if condition == "mask+head" else None)
        out.append(GeneratedImage(image, s, prompt, requested, extra=extra, sampling={
            "steps": steps, "guidance_scale": guidance_scale, "scheduler": scheduler},
            mask=layout.lesion if layout else None))
        if progress is not None:
            progress(i + 1, n)
    read_back(models, out)
    return out


def read_back(models: AppModels, images: list[GeneratedImage]) -> None:
    """Fill in what the judge reads in each image and where that disagrees with the request."""
    import torch

    from synthmed.classify.data import prepare_image
    from synthmed.evaluate.adherence import AdherenceConfig

    judge = models.judge()
    size = judge.config.image_size
    # Only what the judge reads reliably is compared (the adherence evaluator's rule and threshold).
    unreliable = judge.unreliable_attributes(AdherenceConfig.model_fields["min_judge_accuracy"].default)
    compared = tuple(a for a in judge.config.attributes if a not in unreliable)
    batch = torch.stack([prepare_image(g.image, size) for g in images])
    for g, read in zip(images, judge.predict_findings(batch), strict=True):
        g.read, g.reliable = read, compared
        if isinstance(g.requested, BrainMRIFindings):
            g.disagreements = disagreements(g.requested, read, compared)


def export_dataset(images: list[GeneratedImage], chosen: list[int], *, model_id: str) -> Path:
    """A zip of a dataset directory (``metadata.jsonl`` + ``images/``) holding the ``chosen`` images,
    each row with the sampler settings that made its image.

    Raises:
        ConfigError: nothing chosen.
    """
    from synthmed.data.dataset import DatasetWriter

    picked = [images[i] for i in sorted(set(chosen)) if 0 <= i < len(images)]
    if not picked:
        raise ConfigError("no image chosen: tick the images to download first")
    tmp = Path(tempfile.mkdtemp(prefix="synthmed-app-"))
    root = tmp / "synthmed-generated"
    with DatasetWriter(root) as writer:
        for g in picked:
            fields = {"text": g.prompt, "prompt": g.prompt, "requested_findings": g.requested, "seed": g.seed,
                      **g.sampling, "model_id": model_id, "source": f"generated:{model_id}", **g.extra}
            if isinstance(g.requested, BrainMRIFindings):
                fields["label"] = "tumor" if g.requested.tumor_present else "no_tumor"
            writer.add(f"gen_seed{g.seed}.png", g.image, mask=g.mask, **fields)
    return Path(shutil.make_archive(str(root), "zip", root_dir=tmp, base_dir=root.name))
