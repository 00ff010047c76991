import json
import shutil

import pytest

from synthmed.data.dataset import read_records, write_records
from synthmed.data.phantom import PhantomConfig, generate_phantom
from synthmed.errors import DataError
from synthmed.evaluate.adherence import AdherenceConfig, evaluate_adherence
from synthmed.judge import FindingsJudge, JudgeNet, JudgeNetConfig, JudgeTrainConfig, train_judge
from synthmed.testing.standin import make_standin, set_requested

STORED = {"split": "test", "n": 10, "accuracy": {"tumor_present": 0.97, "hemisphere": 0.5, "location": 0.4}}


@pytest.fixture()
def oracle_judge(tmp_path, monkeypatch):
    """A judge directory whose predictions are replaced by the images' true findings."""
    cfg = JudgeNetConfig(image_size=32, widths=(4, 4, 4, 4, 4), hidden=8)
    path = FindingsJudge(JudgeNet(cfg), STORED).save_pretrained(tmp_path / "judge")

    def oracle(self, ds, records=None, **_):
        return [r.findings for r in (ds.records if records is None else records)]

    monkeypatch.setattr(FindingsJudge, "predict_dataset", oracle)
    return path


def _fake(tmp_path, phantom_dir, mode):
    root = tmp_path / f"fake-{mode}"
    shutil.copytree(phantom_dir, root)
    set_requested(root, mode)
    return root


def test_perfect_generator_adheres_and_report_carries_judge_accuracy(tmp_path, phantom_dir, oracle_judge):
    out = tmp_path / "adh.json"
    report = evaluate_adherence(AdherenceConfig(fake=_fake(tmp_path, phantom_dir, "truth"), judge=oracle_judge,
                                                out=out), progress=False)
    assert all(a.accuracy == 1.0 for a in report.agreements.values() if a.n)
    saved = json.loads(out.read_text())
    assert saved["judge_real_test_accuracy"] == STORED["accuracy"]
    assert saved["judge_unreliable_attributes"] == ["hemisphere", "location"]
    assert list(saved["table"]) == ["Tumor", "Loc.", "Size", "Shape", "Intensity", "Orient."]
    cm = saved["attributes"]["tumor_present"]["confusion_matrix"]
    assert cm["reference"] == ["False", "True"] and sum(map(sum, cm["matrix"])) == 48
    lo, hi = saved["attributes"]["tumor_present"]["ci95"]
    assert lo < 0.99 and hi == pytest.approx(1.0)


def test_flipped_hemisphere_prompts_are_caught(tmp_path, phantom_dir, oracle_judge):
    report = evaluate_adherence(AdherenceConfig(fake=_fake(tmp_path, phantom_dir, "flip-hemisphere"),
                                                judge=oracle_judge), progress=False)
    assert report.agreements["tumor_present"].accuracy == 1.0
    assert report.agreements["hemisphere"].accuracy == 0.0
    assert report.agreements["location"].accuracy == 0.0
    assert report.agreements["lobe"].accuracy == 1.0
    flipped = evaluate_adherence(AdherenceConfig(fake=_fake(tmp_path, phantom_dir, "flip-presence"),
                                                 judge=oracle_judge), progress=False)
    assert flipped.agreements["tumor_present"].accuracy == 0.0


def test_row_without_requested_findings_names_file_and_line(tmp_path, phantom_dir, oracle_judge):
    root = _fake(tmp_path, phantom_dir, "truth")
    recs = read_records(root)
    recs[2] = recs[2].model_copy(update={"requested_findings": None})
    write_records(root, recs)
    with pytest.raises(DataError, match=r"metadata\.jsonl, line 3: row 'images/.*' has no requested_findings"):
        evaluate_adherence(AdherenceConfig(fake=root, judge=oracle_judge), progress=False)


@pytest.mark.slow
def test_trained_judge_sees_flipped_hemispheres(tmp_path):
    """End to end with a real judge: adherence drops when the 'generator' ignores the side."""
    real = generate_phantom(PhantomConfig(out=tmp_path / "real", n=1200, size=128, seed=0, workers=1),
                            progress=False)
    train_judge(JudgeTrainConfig(data=real, out=tmp_path / "judge"), progress=False)
    fake = make_standin(tmp_path / "fake", n=200, size=128, seed=11, requested="truth")
    good = evaluate_adherence(AdherenceConfig(fake=fake, judge=tmp_path / "judge"), progress=False)
    set_requested(fake, "flip-hemisphere")
    bad = evaluate_adherence(AdherenceConfig(fake=fake, judge=tmp_path / "judge"), progress=False)
    assert good.agreements["hemisphere"].accuracy >= 0.7
    assert bad.agreements["hemisphere"].accuracy <= 0.2
