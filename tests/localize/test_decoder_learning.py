"""Regressions of the phantom failure: decoders that could not leave p = 0.5, and a flat Dice on healthy slices."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from synthmed.localize.losses import dice_loss, localization_loss
from synthmed.localize.metrics import auroc
from synthmed.localize.model import (
    StageDecoders,
    centred_text,
    image_loss,
    image_scores,
    map_maxima,
    zero_shot_score,
)
from synthmed.localize.scratch import contrastive_loss


def _near_parallel_text(cos: float = 0.998, dim: int = 16) -> torch.Tensor:
    """Two unit vectors with cosine ``cos`` (a weak backbone's normal/abnormal text features)."""
    a = F.normalize(torch.randn(dim, generator=torch.Generator().manual_seed(0)), dim=0)
    b = F.normalize(torch.randn(dim, generator=torch.Generator().manual_seed(1)), dim=0)
    b = F.normalize(b - (b @ a) * a, dim=0)
    sin = (1 - cos**2) ** 0.5
    return torch.stack([a, cos * a + sin * b])


def _token_task(n: int = 64, g: int = 4, d: int = 8):
    """Patch tokens whose first channel marks lesion patches; target masks at 4x the grid."""
    gen = torch.Generator().manual_seed(2)
    lesion = torch.rand(n, g * g, generator=gen) < 0.15
    tokens = torch.randn(n, g * g, d, generator=gen)
    tokens[..., 0] += 3.0 * lesion.float()
    masks = lesion.float().view(n, 1, g, g)
    masks = F.interpolate(masks, scale_factor=4, mode="nearest")[:, 0]
    return tokens, masks


def _train(center: bool, steps: int = 60) -> tuple[float, float, float]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: more threads only contend on a busy CPU
    try:
        return _train_once(center, steps)
    finally:
        torch.set_num_threads(threads)


def _train_once(center: bool, steps: int) -> tuple[float, float, float]:
    torch.manual_seed(0)
    tokens, masks = _token_task()
    text = _near_parallel_text()
    dec = StageDecoders(1, tokens.shape[-1], text.shape[1], center_text=center)
    opt = torch.optim.Adam(dec.parameters(), lr=0.01, betas=(0.5, 0.999))
    losses = []
    for _ in range(steps):
        loss = localization_loss(dec.stage_probs([tokens], text, masks.shape[1:]), masks)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        prob = dec.stage_probs([tokens], text, masks.shape[1:])[0][:, 1]
    return losses[0] - losses[-1], float(prob.max() - prob.min()), auroc(masks.numpy().ravel() > 0.5,
                                                                        prob.numpy().ravel())


def test_centred_text_lets_the_maps_use_the_whole_range_with_near_parallel_text_features():
    # Without centring, |t_abn - t_norm| = 0.06 caps the logit gap at ~0.9/0.07·0.06: maps stay near 0.5.
    drop_raw, range_raw, _ = _train(center=False)
    drop_c, range_c, auc_c = _train(center=True)
    assert range_raw < 0.5
    assert range_c > 0.9
    assert drop_c > 2 * drop_raw
    assert auc_c > 0.95


def test_batch_dice_penalises_false_positives_on_healthy_images():
    lesion = torch.zeros(1, 16, 16)
    lesion[0, 4:8, 4:8] = 1
    healthy = torch.zeros(1, 16, 16)
    target = torch.cat([lesion, healthy])
    clean = target.clone()
    noisy = target.clone()
    noisy[1, 8:14, 8:14] = 0.9  # a false-positive blob on the healthy slice
    assert dice_loss(clean, target) < 0.05
    assert dice_loss(noisy, target) > dice_loss(clean, target) + 0.3
    p = noisy.clone().requires_grad_(True)
    dice_loss(p, target).backward()
    assert p.grad[1, 8:14, 8:14].abs().min() > 1e-3  # the healthy slice gets a real gradient


def test_multi_positive_contrastive_loss_reaches_its_floor_with_duplicate_captions():
    # 6 rows, captions A A A B C C: a perfect embedding is one direction per caption.
    captions = ["A", "A", "A", "B", "C", "C"]
    same = torch.tensor([[a == b for b in captions] for a in captions])
    dirs = {"A": 0, "B": 1, "C": 2}
    emb = F.one_hot(torch.tensor([dirs[c] for c in captions]), 4).float()
    target = same.float() / same.float().sum(1, keepdim=True)
    floor = float(-(target * torch.log(target.clamp_min(1e-12))).sum(1).mean())
    perfect = float(contrastive_loss(emb, emb, same, torch.tensor(100.0)))
    collapsed = float(contrastive_loss(torch.ones(6, 4) / 2, torch.ones(6, 4) / 2, same, torch.tensor(100.0)))
    assert abs(perfect - floor) < 1e-3
    assert collapsed > perfect + 0.5
    assert np.isclose(collapsed, np.log(6), atol=1e-4)


def test_image_loss_trains_the_zero_shot_score_through_the_projection():
    # CLS features carry the label in one channel; only the projection into the joint space is trained.
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(3)
    labels = (torch.rand(128, generator=gen) < 0.5).long()
    cls = torch.randn(128, 8, generator=gen)
    cls[:, 0] += 3.0 * labels  # best achievable AUROC ~0.98
    proj = torch.nn.Linear(8, 16, bias=False)
    text = centred_text(_near_parallel_text())
    opt = torch.optim.Adam(proj.parameters(), lr=0.01)

    def score_auroc() -> float:
        with torch.no_grad():
            s = zero_shot_score(F.normalize(proj(cls), dim=-1), text, 10.0)
        return auroc(labels.numpy() == 1, s.numpy())

    before = score_auroc()
    first = None
    for _ in range(80):
        loss = image_loss(zero_shot_score(F.normalize(proj(cls), dim=-1), text, 10.0), labels)
        first = first if first is not None else float(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.7 * first
    assert score_auroc() > 0.9 > before + 0.2


def test_centred_text_keeps_the_zero_shot_ranking():
    text = _near_parallel_text()
    fc = F.normalize(torch.randn(50, text.shape[1], generator=torch.Generator().manual_seed(4)), dim=-1)
    raw, centred = zero_shot_score(fc, text, 5.0), zero_shot_score(fc, centred_text(text), 5.0)  # unsaturated
    assert torch.equal(raw.argsort(), centred.argsort())
    assert float(centred.max() - centred.min()) > 2 * float(raw.max() - raw.min())  # wider logits


def test_the_map_max_image_loss_pushes_down_the_strongest_false_positive_of_a_healthy_image():
    amap = torch.full((2, 8, 8), 0.3)
    amap[0, 2, 2] = 0.95  # the tumour
    amap[1, 5, 6] = 0.9  # a false-positive blob on the healthy image
    amap.requires_grad_(True)
    zero_shot = torch.tensor([0.6, 0.4])
    labels = torch.tensor([1, 0])
    image_loss(image_scores(zero_shot, map_maxima(amap), "map-max"), labels).backward()
    grad = amap.grad[1]
    assert grad[5, 6] > 0 and int((grad != 0).sum()) == 1  # descent lowers exactly that pixel
    assert amap.grad[0, 2, 2] < 0  # and raises the tumour's peak
    maxima = map_maxima(amap.detach())
    assert torch.equal(image_scores(zero_shot, maxima, "zero-shot"), zero_shot)
    assert torch.allclose(image_scores(zero_shot, maxima, "mean"), torch.tensor([0.775, 0.65]))
