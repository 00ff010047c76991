"""The stage loop: learning, exact checkpoint/resume in process, NaN handling, randomness."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file

from synthmed.models.ldm import NoiseScheduleConfig, UNetConfig, build_noise_scheduler, build_unet
from synthmed.train.ldm import StageConfig, TrainingError
from synthmed.train.ldm import checkpoint as ckpt
from synthmed.train.ldm.loop import StagePlan, run_stage
from synthmed.train.ldm.optim import EMA, build_optimizer
from synthmed.train.ldm.randomness import EpochSampler, step_generator
from synthmed.train.ldm.unet import diffusion_loss


def _accelerator():
    from accelerate import Accelerator

    return Accelerator(cpu=True)


def _tiny_unet(seed: int = 0):
    torch.manual_seed(seed)
    cfg = UNetConfig(block_out_channels=(16, 32), attention=(False, True), norm_num_groups=8, attention_heads=2)
    return build_unet(cfg, latent_channels=4, sample_size=8, cross_attention_dim=16)


def _plan(tmp_path, **kw) -> StagePlan:
    base = dict(name="unet", max_steps=8, deadline=None, checkpoint_dir=tmp_path / "ckpt", digest="d",
                checkpoint_every=4, progress=False, log_every=100)
    base.update(kw)
    return StagePlan(**base)


def _loss_fn(seed: int = 0, repeat_batch: bool = False):
    sched = build_noise_scheduler(NoiseScheduleConfig())
    latents = torch.randn(16, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    emb = torch.randn(16, 6, 16, generator=torch.Generator().manual_seed(2))

    def loss_fn(model, step, micro):
        g = step_generator(seed, "unet", 0 if repeat_batch else step, micro)
        idx = torch.arange(4) if repeat_batch else torch.randint(0, 16, (4,), generator=g)
        noise = torch.randn(4, 4, 8, 8, generator=g)
        t = torch.randint(0, 1000, (4,), generator=g)
        return diffusion_loss(model, sched, latents[idx], emb[idx], noise, t, min_snr_gamma=5.0)

    return loss_fn


def test_loss_decreases_on_a_repeated_batch(tmp_path):
    unet = _tiny_unet()
    cfg = StageConfig(lr=2e-3, warmup_steps=0, max_grad_norm=None)
    res = run_stage(_accelerator(), model=unet, optimizer=build_optimizer(unet.parameters(), cfg), cfg=cfg,
                    plan=_plan(tmp_path, max_steps=40, checkpoint_every=1000), loss_fn=_loss_fn(repeat_batch=True))
    assert res.steps == 40
    first, last = sum(res.losses[:3]) / 3, sum(res.losses[-3:]) / 3
    assert last < 0.5 * first, (first, last)


def _train(tmp_path, *, resume: bool, ckpt_dir=None, grad_accum: int = 1):
    unet = _tiny_unet()
    cfg = StageConfig(lr=1e-3, warmup_steps=2, grad_accum=grad_accum, ema_decay=0.9)
    ema = EMA(unet, 0.9)
    plan = _plan(tmp_path, resume=resume, checkpoint_dir=ckpt_dir or tmp_path / "ckpt")
    res = run_stage(_accelerator(), model=unet, optimizer=build_optimizer(unet.parameters(), cfg), cfg=cfg,
                    plan=plan, loss_fn=_loss_fn(), ema=ema)
    return unet, ema, res


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_resume_from_checkpoint_reproduces_weights_exactly(tmp_path, grad_accum):
    full, full_ema, res = _train(tmp_path / "a", resume=False, grad_accum=grad_accum)
    saved = ckpt.list_checkpoints(tmp_path / "a" / "ckpt")
    assert [p.name for p in saved] == ["step-00000004"]  # the last step is not checkpointed
    assert sorted(f.name for f in saved[0].iterdir()) == [
        "ema.safetensors", "model.safetensors", "optimizer.json", "optimizer.safetensors", "rng-0.json",
        "rng-0.safetensors", "scheduler.json", "state.json"]
    # A second run that finds the step-4 checkpoint continues from it.
    shutil.copytree(tmp_path / "a" / "ckpt", tmp_path / "b" / "ckpt")
    resumed, resumed_ema, res_b = _train(tmp_path / "b", resume=True, grad_accum=grad_accum)
    assert res_b.resumed_from == 4 and res_b.steps == 8
    for (name, p), q in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    for name, p in full_ema.shadow.items():
        assert torch.equal(p, resumed_ema.shadow[name]), name


def test_checkpoint_with_other_config_is_refused(tmp_path):
    _train(tmp_path, resume=False)
    unet = _tiny_unet()
    cfg = StageConfig()
    with pytest.raises(ckpt.CheckpointError, match="different training configuration"):
        run_stage(_accelerator(), model=unet, optimizer=build_optimizer(unet.parameters(), cfg), cfg=cfg,
                  plan=_plan(tmp_path, resume=True, digest="other"), loss_fn=_loss_fn())


def test_nan_loss_stops_with_a_clear_error_and_keeps_checkpoints_valid(tmp_path):
    unet = _tiny_unet()
    cfg = StageConfig(lr=1e-3)
    good = _loss_fn()

    def loss_fn(model, step, micro):
        loss = good(model, step, micro)
        return loss * float("nan") if step == 5 else loss

    with pytest.raises(TrainingError, match=r"unet: loss is nan at step 6.*step-00000004"):
        run_stage(_accelerator(), model=unet, optimizer=build_optimizer(unet.parameters(), cfg), cfg=cfg,
                  plan=_plan(tmp_path), loss_fn=loss_fn)
    saved = ckpt.list_checkpoints(tmp_path / "ckpt")
    assert [p.name for p in saved] == ["step-00000004"]
    weights = load_file(str(saved[0] / "model.safetensors"))
    assert all(torch.isfinite(w).all() for w in weights.values())
    assert not list((tmp_path / "ckpt").glob(".tmp-*"))


def test_time_budget_stops_the_stage(tmp_path):
    import time

    unet = _tiny_unet()
    cfg = StageConfig(lr=1e-3)
    t0 = time.monotonic()
    res = run_stage(_accelerator(), model=unet, optimizer=build_optimizer(unet.parameters(), cfg), cfg=cfg,
                    plan=_plan(tmp_path, max_steps=None, deadline=t0 + 2.0, calibration_steps=2),
                    loss_fn=_loss_fn())
    assert time.monotonic() - t0 < 4.0
    assert res.steps >= 3


def test_epoch_sampler_visits_every_item_once_per_epoch_and_splits_ranks():
    s = EpochSampler(10, seed=0, stage="unet", batch_size=5, world=2)
    epoch = torch.cat([s.indices(0, rank=0), s.indices(0, rank=1)])
    assert sorted(epoch.tolist()) == list(range(10))
    again = EpochSampler(10, seed=0, stage="unet", batch_size=5, world=2)
    assert torch.equal(s.indices(3, rank=1), again.indices(3, rank=1))
    assert not torch.equal(s.indices(1), s.indices(2))


def test_pixel_weights_turn_the_loss_into_a_weighted_mean():
    unet = _tiny_unet().eval()
    sched = build_noise_scheduler(NoiseScheduleConfig(prediction_type="epsilon"))  # the target below is the noise
    g = torch.Generator().manual_seed(3)
    latents, noise = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    emb, t = torch.randn(2, 6, 16, generator=g), torch.tensor([10, 700])
    with torch.no_grad():
        plain = diffusion_loss(unet, sched, latents, emb, noise, t, min_snr_gamma=None)
        ones = diffusion_loss(unet, sched, latents, emb, noise, t, min_snr_gamma=None,
                              pixel_weights=torch.full((2, 1, 8, 8), 3.0))
        inside = torch.zeros(2, 1, 8, 8)
        inside[:, :, 2:5, 2:5] = 1.0
        only_inside = diffusion_loss(unet, sched, latents, emb, noise, t, min_snr_gamma=None, pixel_weights=inside)
        err = (unet(sched.add_noise(latents, noise, t), t, encoder_hidden_states=emb).sample - noise).pow(2)
    torch.testing.assert_close(ones, plain)  # a uniform weight changes nothing
    torch.testing.assert_close(only_inside, err[:, :, 2:5, 2:5].mean())
    assert not torch.isclose(only_inside, plain)
