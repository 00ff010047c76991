"""The ``hf:<model id or path>`` captioner: a local vision-language model (:class:`synthmed.llm.chat.HFVisionChat`).

Any model that ``AutoModelForImageTextToText`` and ``AutoProcessor`` load and whose
processor has a chat template: Gemma 3, Qwen2-VL / Qwen2.5-VL, LLaVA and LLaVA-Med style
models, Llama 3.2 Vision (Mllama), Ovis2 (natively supported by transformers; the original
``AIDC-AI/Ovis*`` repositories run their own code and need ``trust_remote_code=True``,
which is never on by default: it executes code from the model repository).

Decoding is greedy and seeded, images are batched with left padding, and the model runs on
the GPU when one is present (bfloat16 there, float32 on a CPU). The model is loaded on the
first batch that is not already cached, so a fully cached rerun never loads it.
"""

from __future__ import annotations

from synthmed.caption.base import register_captioner
from synthmed.caption.vlm import VLMCaptioner
from synthmed.llm.chat import HFVisionChat


class HFCaptioner(VLMCaptioner):
    """Captions with a local image-text-to-text model.

    Args:
        model: A hub id or a local directory saved with ``save_pretrained``.
        max_parse_retries: See :class:`~synthmed.caption.vlm.VLMCaptioner`.
        **options: :class:`~synthmed.llm.chat.HFVisionChat` options (``trust_remote_code``,
            ``device``, ``dtype``, ``max_new_tokens``, ``seed``).
    """

    def __init__(self, model: str, *, max_parse_retries: int = 1, **options: object):
        super().__init__(HFVisionChat(model, **options), max_parse_retries=max_parse_retries)

    def load(self) -> None:
        """Load processor and model (once)."""
        self.chat.load()


@register_captioner("hf")
def _make_hf_captioner(**options: object) -> HFCaptioner:
    model = str(options.pop("model", "") or "")
    return HFCaptioner(model, **options)  # type: ignore[arg-type]
