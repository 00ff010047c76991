"""Tiny vision-language and text models built offline, saved and loaded like hub checkpoints.

Their weights are random, so they reply with gibberish: tests with them prove the plumbing
(loading through ``from_pretrained(path)``, chat templates, batching, decoding) and the
unparseable-reply path, not captioning quality.
"""

from __future__ import annotations

from pathlib import Path

#: A minimal chat template: "role: text" lines, ``<image>`` where an image goes.
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: "
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}{% endif %}{% endfor %}"
    "{% endif %}\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
)


def _char_tokenizer():  # noqa: ANN202 - transformers type
    """A character-level fast tokenizer (printable ASCII + newline) with an ``<image>`` token."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>", "<image>"]
    vocab = {t: i for i, t in enumerate(specials + [chr(c) for c in range(32, 127)] + ["\n"])}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                  unk_token="<unk>", model_max_length=8192)
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    tok.chat_template = CHAT_TEMPLATE
    return tok


def _llama_config(vocab_size: int, hidden: int = 32):  # noqa: ANN202
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=8192,
                       pad_token_id=0, bos_token_id=1, eos_token_id=2)


def write_tiny_llava(out: str | Path, seed: int = 0) -> Path:
    """Save a ~60 k-parameter LLaVA (CLIP vision tower, Llama text model) and its processor to ``out``.

    ``AutoProcessor.from_pretrained(out)`` and ``AutoModelForImageTextToText.from_pretrained(out)``
    load it, exactly as they load ``llava-hf/llava-1.5-7b-hf``.
    """
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    out = Path(out)
    tok = _char_tokenizer()
    image_processor = CLIPImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tok, patch_size=14,
                               vision_feature_select_strategy="default", chat_template=CHAT_TEMPLATE,
                               num_additional_image_tokens=1)
    vision = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                              image_size=28, patch_size=14)
    config = LlavaConfig(vision_config=vision, text_config=_llama_config(len(tok)),
                         image_token_id=tok.convert_tokens_to_ids("<image>"), vision_feature_layer=-1,
                         vision_feature_select_strategy="default")
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    processor.save_pretrained(out)
    model.save_pretrained(out)
    return out


def write_tiny_causal_lm(out: str | Path, seed: int = 0) -> Path:
    """Save a tiny Llama causal LM with a chat-templated character tokenizer to ``out``."""
    import torch
    from transformers import LlamaForCausalLM

    out = Path(out)
    tok = _char_tokenizer()
    torch.manual_seed(seed)
    model = LlamaForCausalLM(_llama_config(len(tok)))
    tok.save_pretrained(out)
    model.save_pretrained(out)
    return out
