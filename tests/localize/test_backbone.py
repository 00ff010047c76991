"""Stage layers, the offline CLIP tokenizer, and backbone loading errors."""

from __future__ import annotations

import pytest

from synthmed.errors import ConfigError
from synthmed.localize.backbone import check_stage_layers, default_stage_layers, load_backbone
from synthmed.localize.prompts import prompt_ensemble
from synthmed.localize.tokenizer import train_clip_tokenizer


def test_default_stage_layers_follow_the_seed_and_scale():
    assert default_stage_layers(24) == [6, 12, 18, 24]
    assert default_stage_layers(12) == [3, 6, 9, 12]
    assert default_stage_layers(4) == [1, 2, 3, 4]
    assert default_stage_layers(2) == [1, 2]
    with pytest.raises(ConfigError, match="layers 1..4"):
        check_stage_layers([2, 5], 4)


def test_prompt_ensemble_is_templates_times_states():
    normal, abnormal = prompt_ensemble()
    assert len(normal) == len(abnormal) == 20
    assert "A brain MRI scan with no tumour." in normal and "A brain MRI scan with a tumour." in abnormal
    with pytest.raises(ValueError, match="slot"):
        prompt_ensemble(templates=("no slot",))


def test_offline_clip_tokenizer_round_trips(tmp_path):
    from transformers import AutoTokenizer, CLIPTokenizer

    tok = train_clip_tokenizer(["A tumour in the left frontal lobe.", "No tumour."] * 20, vocab_size=300)
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert isinstance(tok, CLIPTokenizer)
    ids = loaded("No tumour in the zebra.").input_ids  # unseen word: byte fallback, no unknown
    assert ids[0] == 0 and ids[-1] == 1
    assert loaded.decode(ids, skip_special_tokens=True).replace(" .", ".").strip() == "no tumour in the zebra."


def test_the_tokenizer_numbers_its_vocabulary_the_same_way_every_time():
    texts = ["A tumour in the left frontal lobe.", "No tumour.", "Ring-enhancing, 12 mm."] * 10
    vocabs = [train_clip_tokenizer(texts, vocab_size=300).get_vocab() for _ in range(4)]
    assert all(v == vocabs[0] for v in vocabs[1:])  # the trainer's own ids follow hash order
    assert vocabs[0]["<|startoftext|>"] == 0 and vocabs[0]["<|endoftext|>"] == 1


def test_missing_backbone_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_backbone(str(tmp_path / "nope"))
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ConfigError, match="CLIP model is needed"):
        load_backbone(str(tmp_path / "bert"))
