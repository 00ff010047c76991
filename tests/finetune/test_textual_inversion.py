"""Textual inversion on a tiny SD pipeline: only new rows train, several concepts, vanilla loading, A1111."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from synthmed.errors import ConfigError, DataError
from synthmed.testing.pipelines import build_clip_tokenizer
from synthmed.train.finetune import TextualInversionConfig, train_textual_inversion
from synthmed.train.finetune.config import ConceptSpec
from synthmed.train.finetune.textual_inversion import ExtendedEmbedding, add_concepts

HERE = Path(__file__).parent


def ti_config(base, data, out, **overrides) -> TextualInversionConfig:
    from synthmed.utils.configs import deep_merge

    cfg = {"base": str(base), "data": str(data), "out": str(out), "resolution": 32, "max_steps": 4,
           "concepts": [{"token": "<tumour>", "init_word": "tumour", "num_vectors": 64, "label": "tumor"},
                        {"token": "<healthy>", "init_word": "brain", "num_vectors": 2, "label": "no_tumor"}],
           "optim": {"batch_size": 2, "lr": 5e-2}, "progress": False, "validation_steps": 2, "tensorboard": False,
           "a1111": True, "checkpoint_every": 2}
    return TextualInversionConfig.model_validate(deep_merge(cfg, overrides, skip_none=False))


def test_only_the_new_rows_are_parameters_and_they_start_at_the_init_word():
    from transformers import CLIPTextConfig, CLIPTextModel

    tok = build_clip_tokenizer()
    te = CLIPTextModel(CLIPTextConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, max_position_embeddings=77,
                                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id))
    te.requires_grad_(False)
    before = te.get_input_embeddings().weight.detach().clone()
    add_concepts(te, tok, [ConceptSpec(token="<x>", init_word="tumour", num_vectors=3)])
    emb = te.get_input_embeddings()
    assert isinstance(emb, ExtendedEmbedding)
    trainable = [n for n, p in te.named_parameters() if p.requires_grad]
    assert len(trainable) == 1 and trainable[0].endswith("token_embedding.new")
    ids = tok("<x> <x>_1 <x>_2", add_special_tokens=False).input_ids
    assert ids == [len(tok) - 3, len(tok) - 2, len(tok) - 1]
    init = before[tok("tumour", add_special_tokens=False).input_ids].mean(0)
    assert torch.allclose(emb.new, init.expand(3, -1))
    assert torch.equal(emb(torch.tensor([5])), before[5:6])  # old rows unchanged
    with pytest.raises(ConfigError, match="already in the tokenizer"):
        add_concepts(te, tok, [ConceptSpec(token="<x>", init_word="brain")])


@pytest.fixture(scope="module")
def ti_out(tiny_sd, ft_data, tmp_path_factory) -> Path:
    return train_textual_inversion(ti_config(tiny_sd, ft_data, tmp_path_factory.mktemp("ti") / "out"))


def test_several_concepts_files_sizes_and_a1111_layout(ti_out: Path):
    tumour = load_file(str(ti_out / "learned_embeds-tumour.safetensors"))
    assert list(tumour) == ["<tumour>"] and tumour["<tumour>"].shape == (64, 32)
    assert load_file(str(ti_out / "learned_embeds-healthy.safetensors"))["<healthy>"].shape == (2, 32)
    assert load_file(str(ti_out / "tumour.a1111.safetensors"))["emb_params"].shape == (64, 32)
    pt = torch.load(ti_out / "tumour.pt", weights_only=True)
    assert pt["string_to_param"]["*"].shape == (64, 32) and pt["name"] == "<tumour>"
    prov = json.loads((ti_out / "synthmed.json").read_text())
    sizes = prov["embedding_files"]
    assert sizes["learned_embeds-tumour.safetensors"] < 1_000_000  # seed 002: < 1 MB
    assert prov["trainable_parameters"] == (64 + 2) * 32


def test_embeddings_load_in_vanilla_diffusers(tiny_sd, ti_out):
    out = subprocess.run([sys.executable, str(HERE / "vanilla_check.py"), str(tiny_sd), "-",
                          str(ti_out / "learned_embeds-tumour.safetensors"), "<tumour>",
                          str(ti_out / "learned_embeds-healthy.safetensors"), "<healthy>"],
                         capture_output=True, text=True, timeout=300,
                         env={"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["synthmed_imported"] is False
    assert report["token_ids"] == {"<tumour>": 64, "<healthy>": 2}  # the prompt expands to every vector
    assert all(v > 1e-4 for v in report["embedding_change"].values()), report


def test_embedding_moves_away_from_its_init_word(ti_out, tiny_sd):
    from transformers import CLIPTextModel, CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(tiny_sd, subfolder="tokenizer")
    te = CLIPTextModel.from_pretrained(tiny_sd, subfolder="text_encoder")
    init = te.get_input_embeddings().weight[tok("tumour", add_special_tokens=False).input_ids].mean(0)
    learned = load_file(str(ti_out / "learned_embeds-tumour.safetensors"))["<tumour>"]
    assert (learned - init).abs().max() > 1e-3


def test_concept_label_without_rows_is_a_data_error(tiny_sd, ft_data, tmp_path):
    with pytest.raises(DataError, match="no training rows with label 'glioma'"):
        train_textual_inversion(ti_config(tiny_sd, ft_data, tmp_path / "o", concepts=[
            {"token": "<g>", "init_word": "tumour", "label": "glioma"}]))


@pytest.mark.slow
def test_sdxl_embeddings_cover_both_text_encoders_and_load_in_generate(tiny_sdxl, ft_data, tmp_path):
    from synthmed.generate.pipeline import load_pipeline

    out = train_textual_inversion(ti_config(tiny_sdxl, ft_data, tmp_path / "xl", a1111=False, max_steps=2,
                                            concepts=[{"token": "<t>", "init_word": "tumour", "num_vectors": 3}]))
    state = load_file(str(out / "learned_embeds.safetensors"))
    assert {k: tuple(v.shape) for k, v in state.items()} == {"clip_l": (3, 32), "clip_g": (3, 32)}
    pipe = load_pipeline(str(tiny_sdxl), scheduler="dpm-solver++", embeddings=[str(out / "learned_embeds.safetensors")])
    for tok in (pipe.tokenizer, pipe.tokenizer_2):
        assert tok.tokenize(pipe.maybe_convert_prompt("<t>", tok)) == ["<t>", "<t>_1", "<t>_2"]
