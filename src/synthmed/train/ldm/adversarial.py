"""Sharpen a trained first stage: fine-tune its decoder against a patch critic, latents unchanged.

An autoencoder trained on L1-type losses decodes the average of what a latent could mean:
blurred anatomy and no scanner noise, which feature-space metrics (FD, precision/recall) and
readers notice. Stable Diffusion's first stage adds a patch-adversarial loss for that
(Esser et al. 2021, "Taming transformers", section 3.2). Here only the decoder is tuned: the
encoder, and so every latent a UNet was or will be trained on, stays exactly as it was, and
the tuned decoder drops into any LDM of that autoencoder.

Each step decodes posterior samples of random latent crops and scores them with
:class:`PatchCritic` (hinge loss). The decoder's loss is L1 + edge + ``adaptive weight x
adversarial_weight x (-critic(fake))``, where the adaptive weight balances the two gradients
at the decoder's last layer (Esser et al.); the critic's loss is the hinge loss on real and
(detached) decoded crops. One optimizer steps both networks: the critic's parameters do not
require gradients while the decoder's adversarial term is computed, and the critic sees only
detached decodes, so each loss moves only its own network. The loop, checkpoints and exact
resume are those of every other stage (:func:`synthmed.train.ldm.loop.run_stage`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from pydantic import Field

from synthmed.train.ldm.autoencoder import encode_images, image_gradients
from synthmed.train.ldm.config import StageConfig
from synthmed.train.ldm.randomness import EpochSampler, step_generator

logger = logging.getLogger(__name__)

STAGE = "decoder_gan"


class DecoderGANConfig(StageConfig):
    """Decoder fine-tuning against a patch critic (the encoder stays frozen)."""

    max_steps: int | None = Field(3000, ge=1)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(5e-5, gt=0, description="decoder learning rate")
    critic_lr: float = Field(2e-4, gt=0, description="critic learning rate")
    warmup_steps: int = Field(50, ge=0)
    max_grad_norm: float | None = Field(None, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    latent_crop: int | None = Field(8, ge=2, description="train on random latent crops of this side (8: 64 px at "
                                    "8x); None: whole images")
    edge_weight: float = Field(0.5, ge=0)
    adversarial_weight: float = Field(0.5, ge=0, description="scale of the adaptively weighted adversarial term")
    critic_start: int = Field(200, ge=0, description="steps in which only the critic learns from the adversarial "
                              "term (the decoder keeps its reconstruction loss)")
    critic_width: int = Field(32, ge=4)
    critic_layers: int = Field(3, ge=1)


class PatchCritic(torch.nn.Module):
    """A PatchGAN critic (Isola et al. 2017): one real/fake logit per overlapping patch.

    ``layers`` stride-2 4x4 convolutions (widths ``width * 2^i``, group norm after the first),
    then a stride-1 4x4 convolution to one logit map.
    """

    def __init__(self, in_channels: int = 1, width: int = 32, layers: int = 3):
        super().__init__()
        blocks: list[torch.nn.Module] = [torch.nn.Conv2d(in_channels, width, 4, 2, 1), torch.nn.LeakyReLU(0.2)]
        ch = width
        for i in range(1, layers):
            out = width * 2 ** i
            blocks += [torch.nn.Conv2d(ch, out, 4, 2 if i < layers - 1 else 1, 1),
                       torch.nn.GroupNorm(min(8, out), out), torch.nn.LeakyReLU(0.2)]
            ch = out
        blocks.append(torch.nn.Conv2d(ch, 1, 4, 1, 1))
        self.net = torch.nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DecoderAndCritic(torch.nn.Module):
    """The trainable pair: the autoencoder's ``post_quant_conv`` + decoder, and the critic."""

    def __init__(self, vae: torch.nn.Module, critic: PatchCritic):
        super().__init__()
        self.vae = vae
        self.critic = critic
        for name, p in vae.named_parameters():
            p.requires_grad_(name.startswith(("decoder.", "post_quant_conv.")))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z).sample

    def critic_on_fake_for_decoder(self, fake: torch.Tensor) -> torch.Tensor:
        """Critic logits whose gradient reaches the decoder but not the critic."""
        for p in self.critic.parameters():
            p.requires_grad_(False)
        try:
            return self.critic(fake)
        finally:
            for p in self.critic.parameters():
                p.requires_grad_(True)

    def forward(self, z: torch.Tensor, real: torch.Tensor):
        fake = self.decode(z)
        return fake, self.critic_on_fake_for_decoder(fake), self.critic(real), self.critic(fake.detach())


def reconstruction_loss(fake: torch.Tensor, real: torch.Tensor, edge_weight: float) -> torch.Tensor:
    """L1 + ``edge_weight`` x L1 of image gradients (the stage-1 pixel terms)."""
    loss = (fake - real).abs().mean()
    if edge_weight > 0:
        (fdy, fdx), (rdy, rdx) = image_gradients(fake), image_gradients(real)
        loss = loss + edge_weight * 0.5 * ((fdy - rdy).abs().mean() + (fdx - rdx).abs().mean())
    return loss


def adaptive_weight(rec: torch.Tensor, adv: torch.Tensor, last_layer: torch.Tensor) -> torch.Tensor:
    """||d rec / d last|| / ||d adv / d last||, clamped to [0, 1e4] (Esser et al. 2021, eq. 7)."""
    g_rec = torch.autograd.grad(rec, last_layer, retain_graph=True)[0]
    g_adv = torch.autograd.grad(adv, last_layer, retain_graph=True)[0]
    return (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0.0, 1e4).detach()


def latent_crops(mean: torch.Tensor, std: torch.Tensor, images: torch.Tensor, size: int | None, factor: int,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior samples of random latent crops and the image crops they decode to.

    Args:
        mean, std: (B, c, h, w) posterior mean and standard deviation.
        images: (B, C, h * factor, w * factor) the images they encode.
        size: Latent crop side (None or >= h: whole latents).
        factor: The autoencoder's downsampling factor.
    """
    eps = torch.randn(mean.shape, generator=generator)
    z = mean + std * eps
    h, w = mean.shape[-2:]
    if size is None or (size >= h and size >= w):
        return z, images
    tops = torch.randint(0, h - size + 1, (len(z),), generator=generator).tolist()
    lefts = torch.randint(0, w - size + 1, (len(z),), generator=generator).tolist()
    zs = torch.stack([zi[:, t:t + size, le:le + size] for zi, t, le in zip(z, tops, lefts, strict=True)])
    xs = torch.stack([xi[:, t * factor:(t + size) * factor, le * factor:(le + size) * factor]
                      for xi, t, le in zip(images, tops, lefts, strict=True)])
    return zs, xs


def make_decoder_gan_loss_fn(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, cfg: DecoderGANConfig,
                             *, seed: int, factor: int, device: torch.device, log: dict | None = None):
    """The ``loss_fn(model, step, micro)`` of decoder fine-tuning over cached posteriors.

    ``log``, when given, receives the last step's parts (reconstruction, adversarial, critic
    losses and the adaptive weight) for progress reports.
    """
    sampler = EpochSampler(len(images), seed=seed, stage=STAGE, batch_size=cfg.batch_size,
                           grad_accum=cfg.grad_accum, world=1)

    def loss_fn(model: DecoderAndCritic, step: int, micro: int) -> torch.Tensor:
        g = step_generator(seed, STAGE, step, micro, 0)
        idx = sampler.indices(step, micro, 0)
        z, real = latent_crops(mean[idx], std[idx], images[idx], cfg.latent_crop, factor, g)
        z, real = z.to(device), real.to(device)
        fake, logits_for_decoder, logits_real, logits_fake = model(z, real)
        rec = reconstruction_loss(fake.float(), real.float(), cfg.edge_weight)
        adv = -logits_for_decoder.float().mean()
        critic = F.relu(1.0 - logits_real.float()).mean() + F.relu(1.0 + logits_fake.float()).mean()
        weight = torch.zeros((), device=device)
        if step >= cfg.critic_start and cfg.adversarial_weight > 0:
            last = model.vae.decoder.conv_out.weight
            weight = cfg.adversarial_weight * adaptive_weight(rec, adv, last)
        if log is not None:
            log.update(rec=rec.item(), adv=adv.item(), critic=critic.item(), weight=weight.item())
        return rec + weight * adv + critic

    return loss_fn


def _digest(cfg: DecoderGANConfig, seed: int, images: torch.Tensor) -> str:
    """Fingerprint of what the checkpoints depend on (the step count excluded)."""
    blob = json.dumps({"config": cfg.model_dump(mode="json", exclude={"max_steps"}), "seed": seed,
                       "images": list(images.shape), "sum": float(images.double().sum())}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def finetune_decoder(vae: torch.nn.Module, images: torch.Tensor, cfg: DecoderGANConfig, *, checkpoint_dir: Path,
                     seed: int = 0, resume: bool = False, progress: bool = True, checkpoint_every: int = 250) -> dict:
    """Fine-tune ``vae``'s decoder in place against a patch critic; return the stage record.

    Args:
        vae: A trained ``AutoencoderKL`` (float32); its encoder is left unchanged.
        images: (N, C, H, W) training images in [-1, 1].
        cfg: The stage's settings.
        checkpoint_dir: Where resumable checkpoints go (safetensors).
        seed: Seed of every random draw (batches, crops, posterior samples).
        resume: Continue from the newest checkpoint in ``checkpoint_dir``; the result is the
            uninterrupted run's, bit for bit.
    """
    from accelerate import Accelerator

    from synthmed.train.ldm.loop import StagePlan, run_stage
    from synthmed.utils.optim import fused_option

    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    device = accelerator.device
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    mean, std = encode_images(vae.to(device), images, device=device)
    with torch.random.fork_rng(devices=[]):  # the critic's initial weights come from the seed
        torch.manual_seed(seed)
        critic = PatchCritic(images.shape[1], cfg.critic_width, cfg.critic_layers)
    model = DecoderAndCritic(vae, critic).to(device)
    decoder_params = [p for p in vae.parameters() if p.requires_grad]
    groups = [{"params": decoder_params, "lr": cfg.lr}, {"params": list(critic.parameters()), "lr": cfg.critic_lr}]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.5, 0.9), weight_decay=cfg.weight_decay,
                                  eps=cfg.adam_eps, **fused_option(decoder_params + list(critic.parameters())))
    parts: dict = {}
    plan = StagePlan(name=STAGE, max_steps=cfg.max_steps, deadline=None, checkpoint_dir=Path(checkpoint_dir),
                     digest=_digest(cfg, seed, images), checkpoint_every=checkpoint_every, progress=progress,
                     resume=resume, images_per_step=cfg.batch_size)
    result = run_stage(accelerator, model=model, optimizer=optimizer, cfg=cfg, plan=plan,
                       loss_fn=make_decoder_gan_loss_fn(images, mean, std, cfg, seed=seed, factor=factor,
                                                        device=device, log=parts))
    vae.requires_grad_(False)
    vae.eval()
    return {"steps": result.steps, "seconds": round(result.seconds, 1), "last_loss": result.last_loss,
            "last_parts": parts, "resumed_from": result.resumed_from, "config": cfg.model_dump(mode="json")}
