import math

import pytest
import torch
import torch.nn.functional as F

from synthmed.classify import AugmentConfig, TrainConfig, ViT, ViTConfig, augment_batch, fit, predict
from synthmed.classify.augment import gaussian_blur
from synthmed.classify.train import lr_at


def _blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """32 px images; class 1 has a bright 6x6 square somewhere, class 0 has none."""
    g = torch.Generator().manual_seed(seed)
    x = 0.3 + 0.05 * torch.rand(n, 1, 32, 32, generator=g)
    y = torch.arange(n) % 2
    for i in range(n):
        if y[i]:
            r, c = torch.randint(2, 24, (2,), generator=g).tolist()
            x[i, 0, r:r + 6, c:c + 6] = 0.9
    return x, y


def test_lr_schedule_warmup_then_cosine():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, schedule="cosine")
    assert lr_at(0, cfg, 110) == pytest.approx(0.1)
    assert lr_at(9, cfg, 110) == pytest.approx(1.0)
    assert lr_at(60, cfg, 110) == pytest.approx(0.5)
    assert lr_at(110, cfg, 110) == pytest.approx(0.0, abs=1e-9)
    assert lr_at(500, TrainConfig(lr=0.3, warmup_steps=10), 600) == 0.3  # constant after warmup


def test_vit_learns_a_separable_task_and_keeps_best_val_weights():
    torch.manual_seed(0)
    x, y = _blobs(192, 0)
    xv, yv = _blobs(64, 1)
    net = ViT(ViTConfig(image_size=32, patch_size=8, channels=1, dim=32, heads=4, depth=1, mlp_dim=64, dropout=0.0,
                        stem="conv"))
    cfg = TrainConfig(epochs=12, batch_size=32, lr=3e-3, warmup_steps=5, schedule="cosine", weight_decay=0.0,
                      patience=None)
    result = fit(net, x, y, cfg, channels=1, loss_fn=F.cross_entropy, val=(xv, yv), progress=False)
    out = predict(net, xv, channels=1)
    assert (out.argmax(1) == yv).float().mean() >= 0.9
    best = min(h["val_loss"] for h in result.history)
    assert F.cross_entropy(out, yv).item() == pytest.approx(best, rel=1e-4)  # the best epoch's weights
    assert result.history[result.best_epoch - 1]["val_loss"] == best


def test_early_stopping_stops():
    x, y = _blobs(32, 0)
    net = ViT(ViTConfig(image_size=32, patch_size=8, channels=1, dim=16, heads=2, mlp_dim=16))
    cfg = TrainConfig(epochs=50, batch_size=16, lr=1e-9, warmup_steps=0, patience=2)  # nothing improves
    result = fit(net, x, y, cfg, channels=1, loss_fn=F.cross_entropy, val=(x, y), progress=False)
    assert result.epochs_run <= 4


def test_augmentation_without_flip_keeps_left_and_right():
    x = torch.zeros(64, 1, 32, 32)
    x[..., :12] = 1.0  # bright image-left side
    g = torch.Generator().manual_seed(0)
    cfg = AugmentConfig(max_shift=0.04, max_rotation_deg=5, max_scale=0.03, intensity=0.1)
    out, _ = augment_batch(x, cfg, g)
    assert (out[..., :16].mean(dim=(1, 2, 3)) > out[..., 16:].mean(dim=(1, 2, 3))).all()
    flipped, _ = augment_batch(x, AugmentConfig(hflip=True), g)
    left_brighter = flipped[..., :16].mean(dim=(1, 2, 3)) > flipped[..., 16:].mean(dim=(1, 2, 3))
    assert 0 < int(left_brighter.sum()) < 64  # some flipped, some not


def test_augmentation_moves_dense_targets_with_their_image():
    x = torch.zeros(8, 1, 64, 64)
    x[:, :, 20:30, 40:50] = 1.0
    lesion = torch.nn.functional.avg_pool2d(x, 4)  # (8, 1, 16, 16) map of the same square
    cfg = AugmentConfig(max_shift=0.1, max_rotation_deg=10, max_scale=0.05)
    out, maps = augment_batch(x, cfg, torch.Generator().manual_seed(3), {"lesion": lesion})
    assert maps["lesion"].shape == lesion.shape

    def centroid(t: torch.Tensor) -> torch.Tensor:  # (B, 2) in [0, 1] image units
        h, w = t.shape[-2:]
        ys = (torch.arange(h) + 0.5) / h
        xs = (torch.arange(w) + 0.5) / w
        m = t[:, 0] / t[:, 0].sum(dim=(1, 2), keepdim=True)
        return torch.stack([(m.sum(2) * ys).sum(1), (m.sum(1) * xs).sum(1)], dim=1)

    assert torch.allclose(centroid(maps["lesion"]), centroid(out), atol=0.02)  # still over the square
    assert (centroid(maps["lesion"]) - centroid(lesion)).abs().max() > 0.02  # and it did move
    assert math.isclose(float(out.max()), 1.0, abs_tol=1e-5)


def test_gaussian_blur_uses_each_images_own_sigma():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 24, 20, generator=g)
    sigma = torch.tensor([0.0, 1.0, 2.5])
    batch = gaussian_blur(x, sigma)
    assert torch.allclose(batch[0], x[0], atol=1e-6)                      # sigma 0: unchanged
    for i in (1, 2):
        assert torch.allclose(batch[i:i + 1], gaussian_blur(x[i:i + 1], sigma[i:i + 1]), atol=1e-6)
    stds = [float(batch[i].std()) for i in range(3)]
    assert stds[0] > stds[1] > stds[2]                                    # more blur, less pixel noise
    flat = torch.full((1, 1, 16, 16), 0.3)
    assert torch.allclose(gaussian_blur(flat, torch.tensor([2.0])), flat, atol=1e-6)  # kernel sums to 1


def test_degradations_change_images_not_targets_and_are_seeded():
    x = torch.full((64, 1, 32, 32), 0.5)
    lesion = torch.zeros(64, 1, 8, 8)
    lesion[:, :, 2:4, 2:4] = 1.0
    cfg = AugmentConfig(max_blur=1.5, max_noise=0.1)
    assert cfg.enabled
    out, maps = augment_batch(x, cfg, torch.Generator().manual_seed(1), {"lesion": lesion})
    again, _ = augment_batch(x, cfg, torch.Generator().manual_seed(1), {"lesion": lesion})
    assert torch.equal(out, again)
    assert torch.equal(maps["lesion"], lesion)
    per_image = (out - 0.5).flatten(1).std(dim=1)
    assert float(per_image.max()) <= 0.1 * 1.3 and float(per_image.max()) > 0.05   # std drawn in [0, 0.1]
    assert float(per_image.min()) < float(per_image.max()) / 3
    # both kinds of noise occur: white noise has almost no correlation between neighbours, blotches a lot
    d = out - 0.5
    neighbour = (d[..., 1:] * d[..., :-1]).flatten(1).mean(1) / d.flatten(1).var(1).clamp_min(1e-12)
    assert (neighbour < 0.3).any() and (neighbour > 0.6).any()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_on_the_gpu_learns_and_augments_like_the_cpu():
    x, y = _blobs(192, 0)
    xv, yv = _blobs(64, 1)
    cfg = AugmentConfig(hflip=True, max_shift=0.04, max_rotation_deg=8, max_scale=0.05, intensity=0.1)
    on_cpu, _ = augment_batch(x[:16], cfg, torch.Generator().manual_seed(3))
    on_gpu, _ = augment_batch(x[:16].cuda(), cfg, torch.Generator().manual_seed(3))
    assert torch.allclose(on_gpu.cpu(), on_cpu, atol=1e-4)  # the same random draws on either device
    torch.manual_seed(0)
    net = ViT(ViTConfig(image_size=32, patch_size=8, channels=1, dim=32, heads=4, depth=1, mlp_dim=64, dropout=0.0,
                        stem="conv")).cuda()
    train = TrainConfig(epochs=12, batch_size=32, lr=3e-3, warmup_steps=5, schedule="cosine", weight_decay=0.0,
                        patience=None, augment=cfg)
    fit(net, x, y, train, channels=1, loss_fn=F.cross_entropy, val=(xv, yv), progress=False)
    out = predict(net, xv, channels=1)
    assert out.device.type == "cpu"
    assert (out.argmax(1) == yv).float().mean() >= 0.9
