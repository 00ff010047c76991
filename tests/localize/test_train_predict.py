"""The localiser end to end on a tiny lesion set: decoders learn, predict writes everything, errors are clear."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from synthmed.data.imageio import load_image
from synthmed.errors import ConfigError, DataError
from synthmed.localize.config import LocalizeTrainConfig
from synthmed.localize.evaluate import LocalizationEvalConfig, evaluate_localization
from synthmed.localize.localizer import load_localizer
from synthmed.localize.predict import PREDICTIONS_FILE, LocalizePredictConfig, load_map, predict_localization
from synthmed.localize.train import train_localizer
from synthmed.results import LocalizationResult, read_result
from synthmed.testing.localize import TINY_TRAIN
from synthmed.utils.training_state import load_training_state


def _meta(model_dir):
    return json.loads((model_dir / "synthmed.json").read_text())


def test_decoders_learn(trained_localizer):
    from huggingface_hub import ModelCard

    card = ModelCard.load(trained_localizer / "README.md")
    assert card.data.library_name == "synthmed" and "pixel_auroc" in card.text
    meta = _meta(trained_localizer)
    assert meta["loss_last_epoch"] < 0.9 * meta["loss_first_epoch"]
    calib = meta["calibration"]
    assert calib["split"] == "val"
    assert calib["metrics"]["metrics"]["pixel_auroc"]["value"] > 0.85  # held-out images; chance is 0.5


def test_model_folder_loads_without_the_training_run(trained_localizer, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(trained_localizer, moved, ignore=shutil.ignore_patterns("checkpoints"))
    loc = load_localizer(moved)
    from transformers import CLIPModel

    assert isinstance(CLIPModel.from_pretrained(moved / "backbone"), CLIPModel)  # a plain CLIP folder
    out = loc.predict([np.zeros((20, 24), np.uint8)])[0]
    assert out.anomaly_map.shape == (20, 24) and 0.0 <= out.image_score <= 1.0


def test_predict_writes_maps_overlays_findings_and_metrics(trained_localizer, lesion_dir, tmp_path):
    out = tmp_path / "pred"
    metrics = predict_localization(LocalizePredictConfig(model=trained_localizer, data=lesion_dir, out=out,
                                                         split="test", progress=False))
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 6
    for row in rows:
        amap = load_image(out / row["map"])
        assert amap.dtype == np.uint16 and amap.shape == (32, 32)
        assert Image.open(out / row["overlay"]).mode == "RGB"
        assert (out / row["heatmap"]).is_file()
        assert (row["findings"] is None) == (row["findings_error"] is not None)
        assert row["findings"] is None or row["findings"]["tumor_present"] == (row["predicted_area_px"] >= 4)
    saved = read_result(out / "metrics.json", LocalizationResult)
    assert saved == metrics
    for key in ("pixel_auroc", "pixel_ap", "pixel_accuracy", "pixel_precision", "pixel_dice", "pixel_iou",
                "image_auroc"):
        assert key in saved.metrics
    assert saved.metrics["pixel_auroc"].value > 0.8
    again = evaluate_localization(LocalizationEvalConfig(pred=out, data=lesion_dir, threshold=saved.threshold))
    assert again.metrics["pixel_auroc"].value == pytest.approx(saved.metrics["pixel_auroc"].value, abs=1e-3)
    assert again.metrics["image_auroc"].value == pytest.approx(saved.metrics["image_auroc"].value)

    # A map from another tool that is not a probability is refused, naming it (the pixel metrics bin [0, 1]).
    rows = [json.loads(line) for line in (out / PREDICTIONS_FILE).read_text().splitlines()]
    with_mask = rows[0]  # every row of the lesion dataset has a mask
    logits = np.full_like(load_map(out / with_mask["map"]), 3.0)
    np.save(out / "logits.npy", logits)
    with_mask["map"] = "logits.npy"
    (out / PREDICTIONS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=r"anomaly map 'logits.npy' is not finite and in \[0, 1\] \(min 3, max 3\)"):
        evaluate_localization(LocalizationEvalConfig(pred=out, data=lesion_dir))


def test_resume_continues_exactly_where_it_stopped(lesion_dir, trained_localizer, tmp_path):
    backbone = str(trained_localizer / "backbone")  # a CLIP folder, loaded by path like a hub model
    opts = {**TINY_TRAIN, "backbone": backbone, "epochs": 1, "data": lesion_dir, "out": tmp_path / "m",
            "image_loss_weight": 0.0, "augment": {"hflip": True, "max_shift": 0.1, "intensity": 0.1}}
    train_localizer(LocalizeTrainConfig.model_validate(opts))
    with pytest.raises(ConfigError, match="--resume"):
        train_localizer(LocalizeTrainConfig.model_validate(opts))
    train_localizer(LocalizeTrainConfig.model_validate({**opts, "epochs": 2, "resume": True}))
    train_localizer(LocalizeTrainConfig.model_validate({**opts, "epochs": 2, "out": tmp_path / "straight"}))
    resumed = load_training_state(tmp_path / "m" / "checkpoints" / "last").meta
    straight = load_training_state(tmp_path / "straight" / "checkpoints" / "last").meta
    assert resumed["epoch"] == 2 and len(resumed["losses"]) == 2 * 3  # 24 training images / batch 8
    assert resumed["losses"] == pytest.approx(straight["losses"], rel=1e-5)
    assert json.loads((tmp_path / "m" / "config.json").read_text())["backbone"] == backbone  # frozen: referenced


def test_image_loss_trains_and_saves_the_projection(lesion_dir, trained_localizer, tmp_path):
    from transformers import CLIPModel

    source = trained_localizer / "backbone"
    out = tmp_path / "m"
    train_localizer(LocalizeTrainConfig.model_validate({**TINY_TRAIN, "backbone": str(source), "epochs": 2,
                                                        "data": lesion_dir, "out": out, "image_loss_weight": 1.0}))
    assert json.loads((out / "config.json").read_text())["backbone"] == "backbone"  # trained: saved with the model
    before, after = CLIPModel.from_pretrained(source), CLIPModel.from_pretrained(out / "backbone")
    assert not torch.equal(before.visual_projection.weight, after.visual_projection.weight)
    assert torch.equal(before.vision_model.encoder.layers[0].mlp.fc1.weight,
                       after.vision_model.encoder.layers[0].mlp.fc1.weight)  # the tower itself stays frozen


def test_the_learning_rate_decays_over_the_last_epochs(lesion_dir, trained_localizer, tmp_path):
    from synthmed.utils.optim import decay_tail_factor

    opts = {**TINY_TRAIN, "backbone": str(trained_localizer / "backbone"), "epochs": 2, "lr_decay_epochs": 1,
            "data": lesion_dir, "out": tmp_path / "m", "image_loss_weight": 1.0}
    cfg = LocalizeTrainConfig.model_validate(opts)
    train_localizer(cfg)
    groups = load_training_state(tmp_path / "m" / "checkpoints" / "last").optimizer["param_groups"]
    last = decay_tail_factor(5, 6, 3)  # 3 steps per epoch; the last step of the decaying epoch
    assert 0 < last < 0.5
    assert [g["lr"] for g in groups] == pytest.approx([cfg.lr * last, cfg.backbone_lr * last])  # decoders, Fc


def test_test_time_flip_makes_the_localiser_mirror_symmetric(trained_localizer):
    loc = load_localizer(trained_localizer)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (32, 32), dtype=np.uint8) for _ in range(3)]
    mirrored = [np.ascontiguousarray(im[:, ::-1]) for im in images]
    plain = loc.predict(images, test_time_flip=False)
    both = loc.predict(images, test_time_flip=True), loc.predict(mirrored, test_time_flip=True)
    for a, b in zip(*both, strict=True):
        np.testing.assert_allclose(a.anomaly_map, b.anomaly_map[:, ::-1], atol=1e-5)
        assert a.zero_shot == pytest.approx(b.zero_shot, abs=1e-6)
        assert a.image_score == pytest.approx(b.image_score, abs=1e-5)
        assert a.map_max == pytest.approx(float(a.anomaly_map.max()), abs=1e-6)
    assert not all(np.allclose(p.anomaly_map, a.anomaly_map, atol=1e-5) for p, a in zip(plain, both[0], strict=True))


def test_test_time_shift_averages_the_shifted_views_moved_back(trained_localizer):
    loc = load_localizer(trained_localizer)
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, (32, 32), dtype=np.uint8) for _ in range(2)]  # the backbone's input size
    got = loc.predict(images, test_time_flip=False, test_time_shift=3)
    shifts = [(0, 0), (3, 0), (-3, 0), (0, 3), (0, -3)]
    views = [loc.predict([np.roll(im, s, axis=(0, 1)) for im in images], test_time_flip=False, test_time_shift=0)
             for s in shifts]
    for i, out in enumerate(got):
        moved_back = [np.roll(v[i].anomaly_map, (-dy, -dx), axis=(0, 1))
                      for v, (dy, dx) in zip(views, shifts, strict=True)]
        expected = np.mean(moved_back, axis=0)
        np.testing.assert_allclose(out.anomaly_map, expected, atol=1e-5)
        assert out.zero_shot == pytest.approx(np.mean([v[i].zero_shot for v in views]), abs=1e-6)
    with pytest.raises(ValueError, match="test_time_shift"):
        loc.predict(images, test_time_shift=-1)


def test_augmentation_moves_the_mask_with_its_image():
    from synthmed.classify.augment import AugmentConfig
    from synthmed.localize.train import _augment

    masks = torch.zeros(4, 32, 32)
    masks[:, 4:12, 18:28] = 1.0
    pixels = masks[:, None].expand(4, 3, 32, 32).clone()  # the image is its own mask
    cfg = AugmentConfig(hflip=True, max_shift=0.15, max_rotation_deg=20.0, max_scale=0.1)
    moved_pixels, moved_masks = _augment(pixels, masks, cfg, seed=7)
    assert not torch.equal(moved_masks, masks)
    assert set(moved_masks.unique().tolist()) <= {0.0, 1.0}
    agree = ((moved_pixels[:, 0] >= 0.5).float() == moved_masks).float().mean()
    assert agree == 1.0
    again = _augment(pixels, masks, cfg, seed=7)
    assert torch.equal(again[1], moved_masks)  # seeded: a resumed run draws the same transforms


def test_a_non_finite_loss_stops_training_without_writing_a_model(lesion_dir, trained_localizer, tmp_path,
                                                                  monkeypatch):
    from synthmed.errors import TrainingError
    from synthmed.localize import train as train_module

    real = train_module.localization_loss
    calls = []

    def loss_going_nan(probs, target):
        calls.append(1)
        loss = real(probs, target)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr(train_module, "localization_loss", loss_going_nan)
    out = tmp_path / "m"
    opts = {**TINY_TRAIN, "backbone": str(trained_localizer / "backbone"), "data": lesion_dir, "out": out}
    with pytest.raises(TrainingError, match="loss is nan at epoch 1, step 3"):
        train_localizer(LocalizeTrainConfig.model_validate(opts))
    assert not (out / "config.json").exists() and not (out / "decoders.safetensors").exists()


def test_bad_inputs_name_the_problem(trained_localizer, lesion_dir, tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        predict_localization(LocalizePredictConfig(model=tmp_path / "none", data=lesion_dir, out=tmp_path / "o"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no config.json"):
        load_localizer(empty)
    bad = tmp_path / "bad"
    shutil.copytree(lesion_dir, bad)
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(bad / "masks" / "img001.png")  # wrong size
    with pytest.raises(DataError, match="mask 'masks/img001.png' is 16x16"):
        train_localizer(LocalizeTrainConfig.model_validate({**TINY_TRAIN, "data": bad, "out": tmp_path / "x"}))
    assert not (tmp_path / "x").exists()  # checked before any model is built
    healthy = tmp_path / "healthy"
    shutil.copytree(lesion_dir, healthy)
    for mask in (healthy / "masks").glob("*.png"):
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(mask)
    with pytest.raises(DataError, match="every mask of split 'train' is empty"):
        train_localizer(LocalizeTrainConfig.model_validate({**TINY_TRAIN, "data": healthy, "out": tmp_path / "h"}))
    assert not (tmp_path / "h").exists()
    with pytest.raises(DataError, match="no rows in split 'holdout'"):
        predict_localization(LocalizePredictConfig(model=trained_localizer, data=lesion_dir, out=tmp_path / "o",
                                                   split="holdout"))


def test_overwrite_keeps_the_users_files(lesion_dir, trained_localizer, tmp_path):
    out = tmp_path / "m"
    opts = {**TINY_TRAIN, "backbone": str(trained_localizer / "backbone"), "epochs": 1, "data": lesion_dir,
            "out": out, "image_loss_weight": 0.0}
    train_localizer(LocalizeTrainConfig.model_validate(opts))
    (out / "notes.txt").write_text("my notes")
    train_localizer(LocalizeTrainConfig.model_validate({**opts, "overwrite": True}))
    assert (out / "notes.txt").read_text() == "my notes"
    assert (out / "decoders.safetensors").is_file()
