"""Tiny pretrained-style diffusers pipelines (SD 1.5, SDXL, Kandinsky 2.2, Kandinsky 3), built offline.

Each ``write_tiny_*`` function builds random-weight components from small configs, wraps
them in the real diffusers pipeline class and saves it with ``save_pretrained``, so that
tests and benchmarks load them through ``from_pretrained(path)`` exactly as users load
``runwayml/stable-diffusion-v1-5`` and the others. Nothing is downloaded.

The CLIP tokenizer is a real ``CLIPTokenizer`` whose byte-level BPE vocabulary is trained
here with the ``tokenizers`` library on the caption vocabulary (CLIP's normaliser and
pre-tokeniser, the ``</w>`` end-of-word suffix, the two special tokens).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from synthmed.testing.ldm import caption_vocabulary

_BOS, _EOS = "<|startoftext|>", "<|endoftext|>"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP's reversible map from bytes to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def build_clip_tokenizer(max_length: int = 77, vocab_size: int = 1000):
    """A ``CLIPTokenizer`` with a small BPE vocabulary learned from the caption vocabulary.

    Every byte character (with and without ``</w>``) is in the vocabulary, so any text
    tokenizes without unknown tokens.
    """
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    byte_chars = sorted(set(_bytes_to_unicode().values()))
    tok = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""),
                             behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False)])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[_BOS, _EOS], end_of_word_suffix="</w>",
                                  initial_alphabet=byte_chars, show_progress=False)
    words = caption_vocabulary() + ["a", "photo", "of", "brain", "mri", "healthy", "lesion", "cat", "dog"]
    tok.train_from_iterator([" ".join(words)] * 4, trainer=trainer)
    data = json.loads(tok.to_str())
    vocab: dict[str, int] = dict(data["model"]["vocab"])
    for ch in byte_chars:
        for piece in (ch, ch + "</w>"):
            if piece not in vocab:
                vocab[piece] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in data["model"]["merges"]]
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length, bos_token=_BOS,
                         eos_token=_EOS, pad_token=_EOS, unk_token=_EOS)


def _clip_text_config(tokenizer, hidden: int, projection_dim: int = 32):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                          num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77,
                          projection_dim=projection_dim, bos_token_id=tokenizer.bos_token_id,
                          eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)


def _tiny_vae(latent_channels: int = 4):
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=latent_channels,
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         norm_num_groups=8, sample_size=32, layers_per_block=1)


def _ddpm():
    from diffusers import DDPMScheduler

    return DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, steps_offset=1,
                         clip_sample=False)


def _unet(cross_attention_dim: int, **extra):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(block_out_channels=(16, 32), layers_per_block=1, sample_size=16, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), norm_num_groups=8,
                                cross_attention_dim=cross_attention_dim, attention_head_dim=8, **extra)


def write_tiny_sd(out: str | Path, seed: int = 0) -> Path:
    """Save a ~0.2 M-parameter ``StableDiffusionPipeline`` (32 px images, 16x16x4 latents) to ``out``."""
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    tokenizer = build_clip_tokenizer()
    pipe = StableDiffusionPipeline(vae=_tiny_vae(), text_encoder=CLIPTextModel(_clip_text_config(tokenizer, 32)),
                                   tokenizer=tokenizer, unet=_unet(32), scheduler=_ddpm(), safety_checker=None,
                                   feature_extractor=None, image_encoder=None, requires_safety_checker=False)
    pipe.save_pretrained(out, safe_serialization=True)
    return Path(out)


def write_tiny_ldm(root: str | Path, seed: int = 0) -> Path:
    """Save a random-weight 32 px grayscale pipeline of ``synthmed train ldm``'s layout to ``root/model``.

    A ``StableDiffusionPipeline`` with a 1-channel autoencoder (2x downsampling, 16x16x4 latents), a
    2-layer BERT text encoder and a UNet with pooled-text conditioning, as the LDM trainer saves.
    """
    from synthmed.models.ldm import (
        AutoencoderConfig,
        NoiseScheduleConfig,
        UNetConfig,
        build_autoencoder,
        build_noise_scheduler,
        build_unet,
        save_pipeline,
    )
    from synthmed.models.text_encoders import load_text_encoder
    from synthmed.testing.ldm import write_tiny_text_encoder

    root = Path(root)
    text = load_text_encoder(str(write_tiny_text_encoder(root / "te", seed=seed)), max_length=32)
    torch.manual_seed(seed)
    vae = build_autoencoder(AutoencoderConfig(block_out_channels=(8, 8), norm_num_groups=4), image_channels=1)
    unet = build_unet(UNetConfig(block_out_channels=(16, 32), attention=(False, True), norm_num_groups=8,
                                 attention_heads=2), latent_channels=4, sample_size=16,
                      cross_attention_dim=text.hidden_size)
    return save_pipeline(root / "model", vae=vae, unet=unet, text_encoder=text.model, tokenizer=text.tokenizer,
                         scheduler=build_noise_scheduler(NoiseScheduleConfig()))


def write_tiny_sdxl(out: str | Path, seed: int = 0) -> Path:
    """Save a tiny ``StableDiffusionXLPipeline`` (two CLIP text encoders, text_time conditioning) to ``out``."""
    from diffusers import StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    tok1, tok2 = build_clip_tokenizer(), build_clip_tokenizer()
    te1 = CLIPTextModel(_clip_text_config(tok1, 32))
    te2 = CLIPTextModelWithProjection(_clip_text_config(tok2, 32, projection_dim=32))
    unet = _unet(64, addition_embed_type="text_time", addition_time_embed_dim=8,
                 projection_class_embeddings_input_dim=6 * 8 + 32, transformer_layers_per_block=1)
    pipe = StableDiffusionXLPipeline(vae=_tiny_vae(), text_encoder=te1, text_encoder_2=te2, tokenizer=tok1,
                                     tokenizer_2=tok2, unet=unet, scheduler=_ddpm(), add_watermarker=False)
    pipe.save_pretrained(out, safe_serialization=True)
    return Path(out)


def tiny_lora_config(base: str | Path, data: str | Path, out: str | Path, **overrides):
    """A :class:`~synthmed.train.finetune.LoraTrainConfig` for a tiny pipeline and 32 px data (6 steps)."""
    from synthmed.train.finetune import LoraTrainConfig
    from synthmed.utils.configs import deep_merge

    cfg = {"base": str(base), "data": str(data), "out": str(out), "resolution": 32, "max_steps": 6,
           "optim": {"batch_size": 2, "lr": 1e-2, "warmup_steps": 1}, "checkpoint_every": 3, "progress": False,
           "validation_steps": 2, "tensorboard": False}
    return LoraTrainConfig.model_validate(deep_merge(cfg, overrides, skip_none=False))


def write_tiny_kandinsky22(out: str | Path, seed: int = 0) -> tuple[Path, Path]:
    """Save a tiny Kandinsky 2.2 prior pipeline to ``out/prior`` and decoder pipeline to ``out/decoder``.

    The decoder makes 32 px images from 16x16x4 movq latents and a 32-d CLIP image embedding.
    """
    from diffusers import (
        DDPMScheduler,
        KandinskyV22Pipeline,
        KandinskyV22PriorPipeline,
        PriorTransformer,
        UnCLIPScheduler,
        UNet2DConditionModel,
        VQModel,
    )
    from transformers import (
        CLIPImageProcessor,
        CLIPTextModelWithProjection,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    out = Path(out)
    torch.manual_seed(seed)
    tok = build_clip_tokenizer()
    prior = PriorTransformer(num_attention_heads=2, attention_head_dim=16, embedding_dim=32, num_layers=1)
    prior.clip_std = torch.nn.Parameter(torch.ones(1, 32))  # the default zeros make every embedding 0
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, projection_dim=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        image_size=32, patch_size=8, num_channels=3))
    processor = CLIPImageProcessor(crop_size=32, size=32, do_center_crop=True, do_resize=True, do_normalize=True,
                                   image_mean=[0.48145466, 0.4578275, 0.40821073],
                                   image_std=[0.26862954, 0.26130258, 0.27577711], resample=3)
    KandinskyV22PriorPipeline(
        prior=prior, image_encoder=image_encoder, text_encoder=CLIPTextModelWithProjection(_clip_text_config(tok, 32)),
        tokenizer=tok, image_processor=processor,
        scheduler=UnCLIPScheduler(variance_type="fixed_small_log", prediction_type="sample", num_train_timesteps=1000,
                                  clip_sample=True, clip_sample_range=10.0),
    ).save_pretrained(out / "prior", safe_serialization=True)
    unet = UNet2DConditionModel(
        in_channels=4, out_channels=8, addition_embed_type="image", block_out_channels=(16, 32), layers_per_block=1,
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn", encoder_hid_dim=32, encoder_hid_dim_type="image_proj",
        cross_attention_dim=32, attention_head_dim=8, resnet_time_scale_shift="scale_shift", class_embed_type=None,
        norm_num_groups=8, sample_size=16)
    movq = VQModel(block_out_channels=(32, 64), down_block_types=("DownEncoderBlock2D", "AttnDownEncoderBlock2D"),
                   up_block_types=("AttnUpDecoderBlock2D", "UpDecoderBlock2D"), in_channels=3, out_channels=3,
                   latent_channels=4, layers_per_block=1, norm_num_groups=32, norm_type="spatial",
                   num_vq_embeddings=12, vq_embed_dim=4)
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=0.00085, beta_end=0.012,
                              clip_sample=False, prediction_type="epsilon", steps_offset=1)
    KandinskyV22Pipeline(unet=unet, scheduler=scheduler, movq=movq).save_pretrained(out / "decoder",
                                                                                  safe_serialization=True)
    return out / "prior", out / "decoder"


def build_t5_tokenizer():
    """A ``T5Tokenizer`` (Unigram) over the caption vocabulary plus single characters, built offline."""
    from transformers import T5Tokenizer

    words = caption_vocabulary() + ["a", "medical", "image", "of", "brain", "mri", "healthy", "lesion"]
    chars = "abcdefghijklmnopqrstuvwxyz0123456789.,-<>_"
    vocab = ([("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [("\u2581" + w, -1.0) for w in words]
             + [(c, -5.0) for c in chars] + [("\u2581", -3.0)])
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def write_tiny_kandinsky3(out: str | Path, seed: int = 0) -> Path:
    """Save a tiny ``Kandinsky3Pipeline`` (T5 text encoder, 16x16x4 movq latents for 32 px images) to ``out``."""
    from diffusers import DDPMScheduler, Kandinsky3Pipeline, Kandinsky3UNet, VQModel
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    tok = build_t5_tokenizer()
    te = T5EncoderModel(T5Config(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                                 pad_token_id=0, eos_token_id=1, decoder_start_token_id=0))
    unet = Kandinsky3UNet(in_channels=4, time_embedding_dim=4, groups=2, attention_head_dim=4, layers_per_block=3,
                          block_out_channels=(32, 64), cross_attention_dim=4, encoder_hid_dim=32)
    movq = VQModel(block_out_channels=(32, 64), down_block_types=("DownEncoderBlock2D", "AttnDownEncoderBlock2D"),
                   up_block_types=("AttnUpDecoderBlock2D", "UpDecoderBlock2D"), in_channels=3, out_channels=3,
                   latent_channels=4, layers_per_block=1, norm_num_groups=32, norm_type="spatial",
                   num_vq_embeddings=12, vq_embed_dim=4)
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, steps_offset=1, beta_schedule="squaredcos_cap_v2",
                              clip_sample=True, thresholding=False)
    Kandinsky3Pipeline(tokenizer=tok, text_encoder=te, unet=unet, scheduler=scheduler, movq=movq).save_pretrained(
        out, safe_serialization=True)
    return Path(out)
