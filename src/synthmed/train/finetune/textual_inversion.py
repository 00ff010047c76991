"""``train_textual_inversion``: learn new multi-vector tokens, everything else frozen (Gal et al. 2022).

Each concept ``<tok>`` with N vectors becomes N new tokens ``<tok> <tok>_1 ... <tok>_{N-1}``
-- the names diffusers' ``load_textual_inversion`` gives them, so a prompt written with
``<tok>`` expands the same way in training and at inference. Only the new rows are
parameters (:class:`ExtendedEmbedding`): the frozen vocabulary is untouched by the
optimizer and weight decay, and checkpoints hold kilobytes. Seed 002 found that medical
concepts need many vectors; any ``num_vectors`` up to 512 works.

Outputs (``slug`` is the token without its brackets):

* ``learned_embeds-{slug}.safetensors``: ``{"<tok>": (N, D)}``, loadable with
  ``pipe.load_textual_inversion(path, token="<tok>")``; with one concept also ``learned_embeds.safetensors``.
  SDXL files hold ``{"clip_l": (N, D1), "clip_g": (N, D2)}`` (load each into its text encoder).
* with ``a1111``: ``{slug}.pt`` (``string_to_param``) and ``{slug}.a1111.safetensors`` (``emb_params``),
  the AUTOMATIC1111 web UI's layouts.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch

from synthmed.errors import ConfigError, DataError
from synthmed.train.finetune.components import check_base
from synthmed.train.finetune.config import ConceptSpec, TextualInversionConfig
from synthmed.train.finetune.core import DenoiseTrainable, FinetuneRun, Validation, run_finetune, start, weight_dtype
from synthmed.train.finetune.data import FinetuneData, load_finetune_data
from synthmed.train.finetune.families import get_family
from synthmed.train.finetune.lora import family_pipeline, load_frozen_parts
from synthmed.utils.outdir import first_argument, writes_to
from synthmed.utils.tmpfiles import save_safetensors

logger = logging.getLogger(__name__)


class ExtendedEmbedding(torch.nn.Module):
    """A frozen token embedding plus trainable rows for ids ``>= base.num_embeddings``.

    Args:
        base: The text encoder's original ``nn.Embedding`` (V, D), left frozen.
        new_rows: (K, D) initial values of the added tokens' vectors.
    """

    def __init__(self, base: torch.nn.Embedding, new_rows: torch.Tensor):
        super().__init__()
        self.base = base
        self.offset = base.num_embeddings
        self.new = torch.nn.Parameter(new_rows.detach().clone().float())

    @property
    def num_embeddings(self) -> int:
        return self.offset + self.new.shape[0]

    @property
    def weight(self) -> torch.Tensor:
        """(V + K, D): the whole table, as code reading ``get_input_embeddings().weight`` expects."""
        return torch.cat([self.base.weight, self.new.to(self.base.weight.dtype)])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        is_new = ids >= self.offset
        old = self.base(ids.clamp(max=self.offset - 1))
        new = torch.nn.functional.embedding((ids - self.offset).clamp(min=0), self.new).to(old.dtype)
        return torch.where(is_new[..., None], new, old)


def token_names(token: str, n: int) -> list[str]:
    """The N tokens of a concept, named as diffusers' ``load_textual_inversion`` names them."""
    return [token] + [f"{token}_{i}" for i in range(1, n)]


def slug(token: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", token).strip("_") or "concept"


def add_concepts(text_encoder, tokenizer, concepts: list[ConceptSpec]) -> list[slice]:
    """Add every concept's tokens, swap in an :class:`ExtendedEmbedding`; return each concept's rows.

    Raises:
        ConfigError: a token already exists in the vocabulary, or an init word tokenizes to nothing.
    """
    base = text_encoder.get_input_embeddings()
    offset = len(tokenizer)
    if base.num_embeddings != offset:
        raise ConfigError(f"tokenizer has {offset} tokens but the text encoder {base.num_embeddings} embeddings")
    rows, slices = [], []
    for c in concepts:
        names = token_names(c.token, c.num_vectors)
        clash = [t for t in names if t in tokenizer.get_vocab()]
        if clash:
            raise ConfigError(f"concept token {clash[0]!r} is already in the tokenizer's vocabulary; pick a new "
                              "placeholder such as '<glioma>'")
        init_ids = tokenizer(c.init_word, add_special_tokens=False).input_ids
        if not init_ids:
            raise ConfigError(f"init word {c.init_word!r} of {c.token!r} tokenizes to nothing")
        init = base.weight[torch.tensor(init_ids)].float().mean(0)  # (D,)
        start_row = offset + sum(len(r) for r in rows)
        rows.append(init.expand(c.num_vectors, -1).clone())
        tokenizer.add_tokens(names)
        slices.append(slice(start_row - offset, start_row - offset + c.num_vectors))
    text_encoder.set_input_embeddings(ExtendedEmbedding(base, torch.cat(rows)))
    return slices


def concept_items(data: FinetuneData, concepts: list[ConceptSpec], root: Path) -> tuple[torch.Tensor, list[int]]:
    """(M,) row of each training item and its concept: every row of each concept's label."""
    rows, which = [], []
    for ci, c in enumerate(concepts):
        mine = [i for i, lab in enumerate(data.labels) if c.label is None or lab == c.label]
        if not mine:
            present = sorted({lab for lab in data.labels if lab})
            raise DataError(f"concept {c.token!r}: no training rows with label {c.label!r} (labels present: "
                            f"{present})", root / "metadata.jsonl")
        rows += mine
        which += [ci] * len(mine)
    return torch.tensor(rows, dtype=torch.long), which


def _export(cfg: TextualInversionConfig, family, module: DenoiseTrainable, slices: list[slice], steps: int) -> dict:
    """Write each concept's embedding files; return their names and sizes."""
    files: dict[str, int] = {}
    for c, sl in zip(cfg.concepts, slices, strict=True):
        tables = [te.get_input_embeddings().new[sl].detach().float().cpu().contiguous()
                  for te in module.text_encoders]
        if family.name == "sdxl":
            state = {"clip_l": tables[0], "clip_g": tables[1]}
        else:
            state = {c.token: tables[0]}
        names = [f"learned_embeds-{slug(c.token)}.safetensors"]
        if len(cfg.concepts) == 1:
            names.append("learned_embeds.safetensors")
        for name in names:
            save_safetensors(state, str(cfg.out / name), metadata={"token": c.token, "num_vectors": str(c.num_vectors)})
        if cfg.a1111 and family.name != "sdxl":
            torch.save({"string_to_param": {"*": tables[0]}, "name": c.token, "step": steps},
                       cfg.out / f"{slug(c.token)}.pt")
            save_safetensors({"emb_params": tables[0]}, str(cfg.out / f"{slug(c.token)}.a1111.safetensors"))
            names += [f"{slug(c.token)}.pt", f"{slug(c.token)}.a1111.safetensors"]
        for name in names:
            files[name] = (cfg.out / name).stat().st_size
            logger.info("%s: %s (%.1f kB)", c.token, cfg.out / name, files[name] / 1e3)
    return {"embedding_files": files, "tokens": {c.token: c.num_vectors for c in cfg.concepts}}


@writes_to(first_argument("config", "out"))
def train_textual_inversion(config: TextualInversionConfig) -> Path:
    """Learn one embedding (N vectors) per concept on a frozen SD 1.5 / SDXL pipeline.

    Returns:
        ``config.out`` holding ``learned_embeds-*.safetensors`` (see the module docstring).

    Raises:
        DataError: bad dataset, or a concept label with no rows.
        ConfigError: bad base / family / output directory, a token already in the vocabulary.
        TrainingError: the loss became NaN or infinite.
    """
    cfg = config.model_copy(update={"out": Path(config.out), "data": Path(config.data)})
    data = load_finetune_data(cfg.data, resolution=cfg.resolution, split=cfg.split,
                              use_paraphrases=cfg.use_paraphrases)
    item_rows, item_concepts = concept_items(data, cfg.concepts, cfg.data)
    check_base(cfg.base)
    family = get_family(cfg.family, cfg.base)
    owned = tuple(f"learned_embeds-{slug(c.token)}.safetensors" for c in cfg.concepts) + ("learned_embeds.safetensors",)
    accelerator, data_hash = start(cfg, owned=owned)
    vae, unet, text_encoders, tokenizers, noise_scheduler = load_frozen_parts(
        cfg.base, family, weight_dtype(accelerator.mixed_precision))
    slices = []
    for te, tok in zip(text_encoders, tokenizers, strict=True):
        slices = add_concepts(te, tok, cfg.concepts)
        te.to(accelerator.device)
    unet.to(accelerator.device)
    if cfg.optim.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    trainable = DenoiseTrainable(family, unet, text_encoders, tokenizers, cfg.resolution, train_text=True)
    expanded = [" ".join(token_names(c.token, c.num_vectors)) for c in cfg.concepts]

    def prompts_fn(items: torch.Tensor, g: torch.Generator) -> list[str]:
        picks = torch.randint(0, 2**31 - 1, (len(items),), generator=g).tolist()
        out = []
        for item, pick in zip(items.tolist(), picks, strict=True):
            caps = data.captions[int(item_rows[item])]
            out.append(cfg.prompt_template.format(token=expanded[item_concepts[item]], text=caps[pick % len(caps)]))
        return out

    prompts = cfg.validation_prompts or [cfg.prompt_template.format(token=c.token, text=data.captions[0][0])
                                         for c in cfg.concepts]
    validation = Validation(prompts=prompts, real=None, steps=cfg.validation_steps,
                            guidance_scale=cfg.validation_guidance_scale, resolution=cfg.resolution, seed=cfg.seed,
                            make_pipeline=lambda: family_pipeline(family, cfg.base, vae=vae, unet=unet,
                                                                  text_encoders=text_encoders,
                                                                  tokenizers=tokenizers).to(accelerator.device))

    def export(module: DenoiseTrainable, result) -> dict:
        return _export(cfg, family, accelerator.unwrap_model(module), slices, result.steps)

    run = FinetuneRun(name="textual_inversion", trainable=trainable, vae=vae, noise_scheduler=noise_scheduler,
                      data=data, item_rows=item_rows, prompts_fn=prompts_fn, export=export, validation=validation)
    run_finetune(accelerator, cfg, run, data_hash=data_hash, extra={"base": cfg.base, "family": family.name})
    return cfg.out
