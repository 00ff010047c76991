"""Stage 2: the text-conditioned UNet on cached latents (MSDM, seed 001 section 4.2).

Per micro-batch: pick images, pick one caption per image among its text and paraphrases
(strategy 1 of section 4.2.2: paraphrases *added* to the originals), replace it by the
empty prompt with probability ``context_dropout`` (so classifier-free guidance works),
sample a latent from the cached posterior, noise it at a random timestep and regress the
noise (or v) with optional Min-SNR-gamma weighting (Hang et al. 2023).
"""

from __future__ import annotations

import torch

from synthmed.models.text_encoders import PromptEmbeddingCache
from synthmed.train.ldm.config import UNetTrainConfig
from synthmed.train.ldm.randomness import EpochSampler, step_generator


def choose_prompts(captions: list[list[str]], indices: torch.Tensor, dropout: float,
                   generator: torch.Generator) -> list[str]:
    """One caption per index, uniformly among its captions, or "" with probability ``dropout``."""
    picks = torch.randint(0, 2**31 - 1, (len(indices),), generator=generator).tolist()
    drops = (torch.rand(len(indices), generator=generator) < dropout).tolist()
    out = []
    for i, pick, drop in zip(indices.tolist(), picks, drops, strict=True):
        out.append("" if drop else captions[i][pick % len(captions[i])])
    return out


def min_snr_weights(noise_scheduler, timesteps: torch.Tensor, gamma: float, prediction_type: str) -> torch.Tensor:
    """Per-sample loss weights min(SNR, gamma) / SNR (epsilon) or / (SNR + 1) (v-prediction)."""
    from diffusers.training_utils import compute_snr

    snr = compute_snr(noise_scheduler, timesteps)
    clipped = torch.clamp(snr, max=gamma)
    return clipped / (snr + 1.0) if prediction_type == "v_prediction" else clipped / snr


def denoising_target(noise_scheduler, z0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """What the network regresses under the scheduler's ``prediction_type``: z0, the noise, or v."""
    prediction_type = noise_scheduler.config.prediction_type
    if prediction_type == "sample":  # x0-prediction (the Kandinsky prior)
        return z0
    if prediction_type == "epsilon":
        return noise
    return noise_scheduler.get_velocity(z0, noise, timesteps)


def lesion_pixel_weights(masks: torch.Tensor, latent_hw: tuple[int, int], weight: float) -> torch.Tensor:
    """(N, 1, h, w) latent-pixel loss weights ``1 + weight * lesion fraction`` from (N, 1, H, W) image masks."""
    return 1.0 + weight * torch.nn.functional.adaptive_avg_pool2d(masks.float(), latent_hw)


def per_sample_mse(pred: torch.Tensor, target: torch.Tensor, pixel_weights: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) mean squared error of each sample, weighted by (B, 1, h, w) ``pixel_weights`` when given."""
    err = (pred.float() - target.float()).pow(2)
    if pixel_weights is None:
        return err.flatten(1).mean(1)
    w = pixel_weights.float().expand_as(err)
    return (w * err).flatten(1).sum(1) / w.flatten(1).sum(1)


def mask_condition(mask_latents: torch.Tensor) -> torch.Tensor:
    """The extra UNet input of a mask-conditioned model: an all-zero mask channel, then the mask picture's latent.

    This is what diffusers' ``StableDiffusionInpaintPipeline`` concatenates to the noisy latent when
    called with ``image=`` the lesion mask (white on black) and ``mask_image=`` an all-black image:
    the nearest-downsampled ``mask_image`` (zeros) and the scaled VAE latent of ``image * (mask_image
    < 0.5)``, i.e. of the lesion mask itself.

    Args:
        mask_latents: (B, c, h, w) scaled VAE latents of the lesion-mask pictures.

    Returns:
        (B, 1 + c, h, w).
    """
    return torch.cat([torch.zeros_like(mask_latents[:, :1]), mask_latents], dim=1)


def diffusion_loss(model: torch.nn.Module, noise_scheduler, latents: torch.Tensor, embeddings: torch.Tensor,
                   noise: torch.Tensor, timesteps: torch.Tensor, *, min_snr_gamma: float | None,
                   pixel_weights: torch.Tensor | None = None, condition: torch.Tensor | None = None) -> torch.Tensor:
    """Denoising loss of one batch.

    Args:
        model: The UNet (maybe wrapped for data parallelism).
        noise_scheduler: The ``DDPMScheduler`` of the forward process.
        latents: (B, c, h, w) scaled clean latents z0.
        embeddings: (B, L, D) text token embeddings.
        noise: (B, c, h, w) standard normal noise.
        timesteps: (B,) int64 in [0, num_train_timesteps).
        pixel_weights: Optional (B, 1, h, w) positive weights of each latent pixel's error;
            each sample's MSE becomes the weighted mean over its pixels.
        condition: Optional (B, k, h, w) image-aligned input concatenated after the noisy latent
            (:func:`mask_condition`).

    Returns:
        Scalar loss: mean over the batch of the (weighted) per-sample MSE.
    """
    prediction_type = noise_scheduler.config.prediction_type
    noisy = noise_scheduler.add_noise(latents, noise, timesteps)  # z_t = sqrt(a_t) z0 + sqrt(1 - a_t) eps
    target = denoising_target(noise_scheduler, latents, noise, timesteps)
    model_input = noisy if condition is None else torch.cat([noisy, condition], dim=1)
    pred = model(model_input, timesteps, encoder_hidden_states=embeddings).sample
    per_sample = per_sample_mse(pred, target, pixel_weights)
    if min_snr_gamma is not None:
        per_sample = per_sample * min_snr_weights(noise_scheduler, timesteps, min_snr_gamma, prediction_type)
    return per_sample.mean()


def make_unet_loss_fn(latent_mean: torch.Tensor, latent_std: torch.Tensor, scaling_factor: float,
                      captions: list[list[str]], texts: PromptEmbeddingCache, noise_scheduler,
                      cfg: UNetTrainConfig, *, seed: int, rank: int, world: int, device: torch.device,
                      lesion_masks: torch.Tensor | None = None,
                      mask_posterior: tuple[torch.Tensor, torch.Tensor] | None = None):
    """The stage-2 ``loss_fn(model, step, micro)``.

    Args:
        latent_mean, latent_std: (N, c, h, w) cached posterior of every training image.
        scaling_factor: Multiplies sampled latents (the VAE's ``scaling_factor``).
        captions: Per image, its captions.
        texts: Frozen text encoder with an embedding cache.
        lesion_masks: (N, 1, H, W) image-resolution lesion masks; with ``cfg.lesion_weight``
            > 0 the error on a latent pixel counts ``1 + lesion_weight * lesion fraction``
            times (lesions are a few percent of a slice, yet they are what the prompt asks for).
        mask_posterior: For a mask-conditioned UNet, the cached posterior (mean, std), each
            (N, c, h, w), of every image's lesion-mask picture; each step samples it as the
            inpainting pipeline does (:func:`mask_condition`).
    """
    sampler = EpochSampler(len(latent_mean), seed=seed, stage="unet", batch_size=cfg.batch_size,
                           grad_accum=cfg.grad_accum, world=world)
    num_t = noise_scheduler.config.num_train_timesteps
    alphas = noise_scheduler.alphas_cumprod.to(device)
    noise_scheduler.alphas_cumprod = alphas  # add_noise and compute_snr index it on the latents' device
    weights = None
    if cfg.lesion_weight > 0 and lesion_masks is not None:
        weights = lesion_pixel_weights(lesion_masks, latent_mean.shape[-2:], cfg.lesion_weight)  # (N, 1, h, w)

    def loss_fn(model: torch.nn.Module, step: int, micro: int) -> torch.Tensor:
        g = step_generator(seed, "unet", step, micro, rank)
        idx = sampler.indices(step, micro, rank)
        eps = torch.randn(latent_mean[idx].shape, generator=g)
        z0 = (latent_mean[idx] + latent_std[idx] * eps) * scaling_factor
        noise = torch.randn(z0.shape, generator=g)
        timesteps = torch.randint(0, num_t, (len(idx),), generator=g)
        prompts = choose_prompts(captions, idx, cfg.context_dropout, g)
        emb = texts.get(prompts).to(device)
        condition = None
        if mask_posterior is not None:
            m_mean, m_std = mask_posterior[0][idx], mask_posterior[1][idx]
            condition = mask_condition((m_mean + m_std * torch.randn(m_mean.shape, generator=g)) * scaling_factor)
        return diffusion_loss(model, noise_scheduler, z0.to(device), emb, noise.to(device), timesteps.to(device),
                              min_snr_gamma=cfg.min_snr_gamma,
                              pixel_weights=None if weights is None else weights[idx].to(device),
                              condition=None if condition is None else condition.to(device))

    return loss_fn
