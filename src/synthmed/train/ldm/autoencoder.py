"""Stage 1: the ``AutoencoderKL`` (reconstruction + edge + KL) and the latent cache."""

from __future__ import annotations

import torch

from synthmed.train.ldm.config import AutoencoderTrainConfig
from synthmed.train.ldm.randomness import EpochSampler, step_generator


class AutoencoderForTraining(torch.nn.Module):
    """Wraps an ``AutoencoderKL`` so that one ``forward`` runs encoder and decoder.

    Distributed data parallel only synchronises gradients of work done inside the wrapped
    module's ``forward``, and ``AutoencoderKL.forward`` does not return the posterior the
    KL term needs.
    """

    def __init__(self, vae: torch.nn.Module):
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor, eps: torch.Tensor, decoder_noise: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruct ``x``.

        Args:
            x: (B, C, H, W) images in [-1, 1].
            eps: (B, latent_channels, H/f, W/f) standard normal noise for the posterior sample.
            decoder_noise: Optional noise of ``eps``'s shape added to the latent before decoding,
                in units of the batch's standard deviation of posterior means.

        Returns:
            Reconstruction (B, C, H, W), posterior mean and log-variance (B, latent_channels, H/f, W/f).
        """
        posterior = self.vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * eps  # reparameterisation trick
        if decoder_noise is not None:
            z = z + decoder_noise * posterior.mean.detach().std()
        return self.vae.decode(z).sample, posterior.mean, posterior.logvar


def image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Finite differences along H and W: (B, C, H-1, W) and (B, C, H, W-1)."""
    return x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]


def autoencoder_loss(recon: torch.Tensor, x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor,
                     cfg: AutoencoderTrainConfig) -> torch.Tensor:
    """L1 reconstruction + ``edge_weight`` * L1 of image gradients + ``kl_weight`` * KL.

    The KL divergence to N(0, I) is summed over a latent and averaged over the batch, as in
    Rombach et al. (2022); the pixel terms are means, so ``kl_weight`` ~ 1e-6 keeps the
    latent well scaled without blurring.
    """
    recon, x = recon.float(), x.float()
    loss = (recon - x).abs().mean()
    if cfg.edge_weight > 0:
        (rdy, rdx), (xdy, xdx) = image_gradients(recon), image_gradients(x)
        loss = loss + cfg.edge_weight * 0.5 * ((rdy - xdy).abs().mean() + (rdx - xdx).abs().mean())
    if cfg.kl_weight > 0:
        mean, logvar = mean.float(), logvar.float()
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).flatten(1).sum(1).mean()
        loss = loss + cfg.kl_weight * kl
    return loss


def random_crops(images: torch.Tensor, size: int | None, generator: torch.Generator) -> torch.Tensor:
    """One random (size x size) crop per image of (B, C, H, W); the images unchanged when size is None or too big."""
    h, w = images.shape[-2:]
    if size is None or (size >= h and size >= w):
        return images
    size = min(size, h, w)
    tops = torch.randint(0, h - size + 1, (images.shape[0],), generator=generator).tolist()
    lefts = torch.randint(0, w - size + 1, (images.shape[0],), generator=generator).tolist()
    return torch.stack([img[:, t:t + size, left:left + size] for img, t, left in zip(images, tops, lefts, strict=True)])


def make_autoencoder_loss_fn(images: torch.Tensor, cfg: AutoencoderTrainConfig, *, seed: int, rank: int,
                             world: int, downsample: int, latent_channels: int, device: torch.device):
    """The stage-1 ``loss_fn(model, step, micro)`` over ``images`` (N, C, H, W) in [-1, 1]."""
    sampler = EpochSampler(len(images), seed=seed, stage="autoencoder", batch_size=cfg.batch_size,
                           grad_accum=cfg.grad_accum, world=world)

    def loss_fn(model: torch.nn.Module, step: int, micro: int) -> torch.Tensor:
        g = step_generator(seed, "autoencoder", step, micro, rank)
        x = random_crops(images[sampler.indices(step, micro, rank)], cfg.crop_size, g)
        eps = torch.randn((x.shape[0], latent_channels, x.shape[-2] // downsample, x.shape[-1] // downsample),
                          generator=g)
        noise = None
        if cfg.decoder_noise > 0:
            strength = cfg.decoder_noise * torch.rand((x.shape[0], 1, 1, 1), generator=g)  # uniform per image
            noise = (strength * torch.randn(eps.shape, generator=g)).to(device)
        x, eps = x.to(device), eps.to(device)
        recon, mean, logvar = model(x, eps, noise)
        return autoencoder_loss(recon, x, mean, logvar, cfg)

    return loss_fn


@torch.no_grad()
def encode_images(vae: torch.nn.Module, images: torch.Tensor, *, batch_size: int = 16,
                  device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and standard deviation of every image, in fixed chunks (deterministic).

    Args:
        vae: A trained ``AutoencoderKL``.
        images: (N, C, H, W) in [-1, 1].

    Returns:
        Two (N, latent_channels, H/f, W/f) float32 CPU tensors: mean and std (unscaled).
    """
    vae.eval()
    means, stds = [], []
    for i in range(0, len(images), batch_size):
        post = vae.encode(images[i:i + batch_size].to(device)).latent_dist
        means.append(post.mean.float().cpu())
        stds.append(post.std.float().cpu())
    return torch.cat(means), torch.cat(stds)


def latent_scaling_factor(mean: torch.Tensor, std: torch.Tensor) -> float:
    """1 / (standard deviation of posterior samples), so that scaled latents have unit variance.

    Var(z) = Var(mean) + E[std^2] for z = mean + std * eps (Rombach et al. 2022 rescale
    latents the same way, estimated on a batch of samples).
    """
    var = mean.double().var() + std.double().pow(2).mean()
    return float(1.0 / var.sqrt())
