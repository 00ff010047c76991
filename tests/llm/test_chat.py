"""The one chat contract: message folding, the server format, back-end choice and its errors."""

from __future__ import annotations

import numpy as np
import pytest

from synthmed.errors import ConfigError
from synthmed.llm.chat import (
    APIChat,
    ChatMessage,
    ChatRequest,
    HFTextChat,
    HFVisionChat,
    _folded,
    chat_model,
)
from synthmed.testing.vlm import write_tiny_causal_lm, write_tiny_llava


def test_system_text_is_folded_into_the_first_user_turn():
    img = np.zeros((4, 4, 3), np.uint8)
    msgs = [ChatMessage("system", "Be brief."), ChatMessage("user", "What is shown?", img),
            ChatMessage("assistant", "x"), ChatMessage("user", "Again.")]
    folded = _folded(msgs)
    assert [m.role for m in folded] == ["user", "assistant", "user"]
    assert folded[0].text == "Be brief.\n\nWhat is shown?" and folded[0].image is img
    assert _folded(msgs[1:]) == msgs[1:]  # nothing to fold


def test_server_format_puts_images_as_png_data_urls(monkeypatch):
    monkeypatch.setenv("SYNTHMED_API_BASE", "http://127.0.0.1:9/v1")
    chat = APIChat("m")
    req = ChatRequest((ChatMessage("system", "S"), ChatMessage("user", "Q", np.full((2, 2, 3), 7, np.uint8))))
    out = chat.messages(req)
    assert out[0] == {"role": "system", "content": "S"}
    text, image = out[1]["content"]
    assert text == {"type": "text", "text": "Q"} and image["image_url"]["url"].startswith("data:image/png;base64,")
    chat.close()


def test_back_end_choice_and_option_filtering(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHMED_API_BASE", "http://127.0.0.1:9/v1")
    llava = write_tiny_llava(tmp_path / "llava")
    vision = chat_model(f"hf:{llava}", vision=True, device="cpu", base_url="ignored", max_new_tokens=3, seed=None)
    assert isinstance(vision, HFVisionChat) and vision.name == f"hf:{llava}" and vision.max_new_tokens == 3
    text = chat_model(f"hf:{llava}", vision=False)
    assert isinstance(text, HFTextChat)
    api = chat_model("api:m", vision=True, device="cpu", max_tokens=9)
    assert isinstance(api, APIChat) and api.name == "api:m"
    api.close()
    with pytest.raises(ConfigError, match="unknown VLM back end 'gpt'"):
        chat_model("gpt", vision=True, what="VLM back end")
    with pytest.raises(ConfigError, match="no such model directory"):
        chat_model(f"hf:{tmp_path}/missing", vision=True)
    with pytest.raises(ConfigError, match="dtype"):
        HFVisionChat("some/model", dtype="int3")


def test_local_models_answer_in_order_and_text_models_refuse_images(tmp_path):
    lm = HFTextChat(str(write_tiny_causal_lm(tmp_path / "lm")), max_new_tokens=4)
    reqs = [ChatRequest((ChatMessage("system", "S"), ChatMessage("user", q))) for q in ("a", "a longer question")]
    both = lm.answer(reqs)
    assert len(both) == 2 and all(isinstance(r, str) for r in both)
    assert lm.answer(reqs[:1]) == both[:1]  # greedy and seeded: the same request, the same reply
    assert lm.answer([]) == []
    with pytest.raises(ConfigError, match="cannot read images"):
        lm.answer([ChatRequest((ChatMessage("user", "q", np.zeros((2, 2, 3), np.uint8)),))])
