import json

import pytest
import torch
from pydantic import ValidationError

from synthmed.data import ImageDataset
from synthmed.errors import ConfigError, DataError
from synthmed.findings.schema import BrainMRIFindings
from synthmed.judge import DEFAULT_ATTRIBUTES, FindingsJudge, JudgeNet, JudgeNetConfig, JudgeTrainConfig, train_judge
from synthmed.judge.targets import IGNORE, best_threshold, findings_targets, judge_loss, outputs_to_findings
from synthmed.judge.train import judge_preset

ROUND = BrainMRIFindings(tumor_present=True, hemisphere="left", lobe="frontal", size_mm=12, shape="round",
                         intensity="hyperintense", edema=False, mass_effect=True)
OVAL = BrainMRIFindings(tumor_present=True, hemisphere="right", lobe="occipital", size_mm=45, shape="oval",
                        intensity="ring-enhancing", orientation="vertical", edema=True, mass_effect=False)
NONE = BrainMRIFindings(tumor_present=False)


@pytest.fixture(scope="module")
def quick_judge(phantom_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("judge") / "j"
    report = train_judge(JudgeTrainConfig(data=phantom_dir, out=out, preset="quick", threads=1), progress=False)
    return out, report


def test_targets_mask_unstated_attributes():
    t = findings_targets([ROUND, OVAL, NONE], DEFAULT_ATTRIBUTES)
    assert t["tumor_present"].tolist() == [1.0, 1.0, 0.0]
    assert t["hemisphere"].tolist() == [0, 1, IGNORE]
    assert t["orientation"].tolist() == [IGNORE, 1, IGNORE]  # a round tumour has no orientation
    assert t["edema"].tolist() == [0, 1, IGNORE]


def test_masked_heads_get_no_gradient_and_loss_stays_finite():
    cfg = JudgeNetConfig(image_size=32, widths=(4, 4, 4, 4, 4), hidden=8)
    net = JudgeNet(cfg)
    out = net(torch.rand(2, 1, 32, 32))
    t = findings_targets([NONE, NONE], cfg.attributes)  # nothing but presence is stated
    loss = judge_loss(out, t)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(h.weight.grad is None or float(h.weight.grad.abs().sum()) == 0 for h in net.heads.values())


def test_outputs_to_findings_thresholds_and_drops_round_orientation():
    attrs = DEFAULT_ATTRIBUTES
    out = {"tumor_present": torch.tensor([3.0, -3.0])}
    for name, values in attrs.items():
        logits = torch.zeros(2, len(values))
        logits[:, 0] = 1.0
        out[name] = logits
    found = outputs_to_findings(out, attrs)
    assert found[1] == NONE
    assert found[0].tumor_present and found[0].hemisphere == "left" and found[0].shape == "round"
    assert found[0].orientation is None
    assert not outputs_to_findings(out, attrs, threshold=0.99)[0].tumor_present


def test_presence_threshold_is_the_most_accurate_nearest_half():
    probs = torch.tensor([0.2, 0.4, 0.6, 0.9])
    logits = torch.log(probs / (1 - probs))
    assert best_threshold(logits, torch.tensor([0, 1, 1, 1])) == pytest.approx(0.4, abs=1e-5)
    assert best_threshold(logits, torch.tensor([0, 0, 1, 1])) == 0.5


def test_judge_config_refuses_horizontal_flips(tmp_path):
    with pytest.raises(ValidationError, match="hemisphere"):
        JudgeTrainConfig(data=tmp_path, out=tmp_path / "j", train={"augment": {"hflip": True}})
    with pytest.raises(ConfigError, match="cpu, quick, large"):
        judge_preset("tiny")
    for _, train in (judge_preset(n) for n in ("cpu", "quick", "large")):
        assert not train.augment.hflip


def test_train_save_load_predict_round_trip(quick_judge, phantom_dir):
    out, report = quick_judge
    for name in ("model.safetensors", "config.json", "real_test_metrics.json", "synthmed.json"):
        assert (out / name).is_file()
    prov = json.loads((out / "synthmed.json").read_text())
    assert prov["kind"] == "findings-judge" and prov["data_hash"] and prov["seed"] == 0
    metrics = json.loads((out / "real_test_metrics.json").read_text())
    assert metrics["split"] == "test" and set(metrics["accuracy"]) >= {"tumor_present", "hemisphere", "location"}
    assert metrics["accuracy"]["tumor_present"] == report.accuracy()["tumor_present"]
    from huggingface_hub import ModelCard

    card = ModelCard.load(out / "README.md")  # the model card, written at save time
    assert card.data.library_name == "synthmed" and "accuracy on real tumor_present (test split" in card.text
    judge = FindingsJudge.from_pretrained(out)
    ds = ImageDataset(phantom_dir)
    again = judge.predict_dataset(ds, ds.split("test"), progress=False)
    first = FindingsJudge.from_pretrained(out).predict_dataset(ds, ds.split("test"), progress=False)
    assert again == first and len(again) == report.n_test
    assert judge.real_test_metrics["accuracy"] == metrics["accuracy"]
    assert 0 < json.loads((out / "config.json").read_text())["presence_threshold"] < 1  # set on val


def test_loading_a_wrong_directory_names_it(tmp_path):
    with pytest.raises(DataError, match="judge directory not found"):
        FindingsJudge.from_pretrained(tmp_path / "nope")
    (tmp_path / "j").mkdir()
    with pytest.raises(DataError, match="model.safetensors is missing"):
        FindingsJudge.from_pretrained(tmp_path / "j")


def test_judge_needs_splits(tmp_path, phantom_dir):
    import shutil

    from synthmed.data.dataset import read_records, write_records

    root = tmp_path / "nosplit"
    shutil.copytree(phantom_dir, root)
    write_records(root, [r.model_copy(update={"split": None}) for r in read_records(root)])
    with pytest.raises(DataError, match="train.*test.*splits"):
        train_judge(JudgeTrainConfig(data=root, out=tmp_path / "j", preset="quick"), progress=False)


def test_geometry_features_see_size_and_orientation():
    from synthmed.judge.model import _geometry

    maps = torch.full((3, 1, 32, 32), -20.0)
    maps[0, 0, 14:18, 8:24] = 20.0  # horizontal ellipse-ish bar
    maps[1, 0, 8:24, 14:18] = 20.0  # vertical
    maps[2, 0, 15:17, 15:17] = 20.0  # small
    g = _geometry(maps)
    log_area, elongation = g[:, 0], g[:, 2]
    assert elongation[0] > 0.5 and elongation[1] < -0.5 and abs(float(elongation[2])) < 0.1
    assert log_area[0] == pytest.approx(log_area[1]) and log_area[2] < log_area[0] - 1.5
    empty = _geometry(torch.full((1, 1, 32, 32), -20.0))
    assert empty.abs().max() <= 10 and torch.isfinite(empty).all()


@pytest.mark.parametrize("stride", [4, 2])
def test_lesion_map_resolution_follows_map_stride_and_trains_on_its_targets(stride):
    from synthmed.judge.targets import lesion_map_targets

    torch.manual_seed(0)
    cfg = JudgeNetConfig(image_size=32, widths=(4, 4, 8, 8, 8), hidden=8, map_stride=stride)
    net = JudgeNet(cfg)
    out = net(torch.rand(2, 1, 32, 32))
    assert cfg.map_size == 32 // stride and out["lesion_map"].shape == (2, 1, cfg.map_size, cfg.map_size)
    mask = torch.zeros(1, 32, 32)
    mask[0, 10:13, 20:23] = 1.0  # a 3-pixel lesion: one or two cells of a stride-2 map
    maps, valid = lesion_map_targets([mask, None], cfg.map_size)
    assert maps.shape == (2, 1, cfg.map_size, cfg.map_size) and valid.tolist() == [True, False]
    assert float(maps[0].sum()) == pytest.approx(9 / stride**2, rel=1e-3)  # the lesion's area in map cells
    t = findings_targets([ROUND, NONE], cfg.attributes)
    t["lesion_map"], t["map_valid"] = maps, valid
    judge_loss(out, t).backward()
    assert net.lesion.weight.grad is not None and float(net.lesion.weight.grad.abs().sum()) > 0
    with pytest.raises(ValidationError):
        JudgeNetConfig(map_stride=8)


def test_judge_refuses_a_train_split_of_one_class(tmp_path, phantom_dir):
    import shutil

    from synthmed.data.dataset import read_records, write_records

    root = tmp_path / "healthy"
    shutil.copytree(phantom_dir, root)
    write_records(root, [r.model_copy(update={"findings": NONE, "original_findings": None})
                         for r in read_records(root)])
    with pytest.raises(DataError, match="'train' rows is healthy"):
        train_judge(JudgeTrainConfig(data=root, out=tmp_path / "j", preset="quick"), progress=False)
    assert not (tmp_path / "j").exists()
