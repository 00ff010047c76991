import json
import shutil

import pytest

from synthmed.caption import caption_dataset
from synthmed.data.dataset import read_records, write_records
from synthmed.errors import DataError
from synthmed.evaluate.captions import CaptionEvalConfig, evaluate_captions


def _truth(phantom_dir):
    return {r.file_name: r.findings for r in read_records(phantom_dir)}


def test_jsonl_predictions_scored_per_captioner_missing_counts_wrong(tmp_path, phantom_dir):
    truth = _truth(phantom_dir)
    tumours = [fn for fn, f in truth.items() if f.tumor_present]
    healthy = [fn for fn, f in truth.items() if not f.tumor_present]
    lines = []
    for fn, f in truth.items():  # "good": perfect except 4 flipped hemispheres
        d = f.to_dict()
        if fn in tumours[:4]:
            d["hemisphere"] = "right" if d["hemisphere"] == "left" else "left"
        lines.append({"file_name": fn, "findings": d, "captioner": "good"})
    for fn in tumours[:10]:  # "lazy": says "no tumour" for 10 tumours, nothing else (bare names)
        lines.append({"file_name": fn.split("/")[-1], "findings": {"modality": "brain_mri", "tumor_present": False},
                      "captioner": "lazy"})
    lines.append({"file_name": healthy[0], "findings": None, "captioner": "lazy"})  # a failure
    pred = tmp_path / "pred.jsonl"
    pred.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    report = evaluate_captions(CaptionEvalConfig(pred=pred, ref=phantom_dir, out=tmp_path / "c.json"))
    n, nt = len(truth), len(tumours)
    good, lazy = report.agreements["good"], report.agreements["lazy"]
    assert good["tumor_present"].accuracy == 1.0
    assert good["hemisphere"].accuracy == pytest.approx((nt - 4) / nt)
    assert good["location"].accuracy == pytest.approx((nt - 4) / nt)
    assert good["lobe"].accuracy == 1.0
    assert lazy["tumor_present"].n == n and lazy["tumor_present"].correct == 0  # 10 wrong + 38 missing
    assert report.missing == {"good": 0, "lazy": n - 10}
    saved = json.loads((tmp_path / "c.json").read_text())
    assert set(saved["table"]) == {"good", "lazy"}
    assert list(saved["table"]["good"]) == ["Tumor", "Loc.", "Size", "Shape", "Intensity", "Orient."]
    cm = saved["captioners"]["good"]["attributes"]["hemisphere"]["confusion_matrix"]
    assert sum(map(sum, cm["matrix"])) == nt and cm["reference"] == ["left", "right"]


def test_dataset_predictions_use_original_findings_and_failures_count_wrong(tmp_path, phantom_dir):
    root = tmp_path / "cap"
    shutil.copytree(phantom_dir, root)
    caption_dataset(root, "mask", progress=False)
    recs = read_records(root)
    recs[0] = recs[0].model_copy(update={"caption_error": "model timed out"})  # kept old findings: must not count
    write_records(root, recs)
    report = evaluate_captions(CaptionEvalConfig(pred=root, ref=root))
    assert list(report.agreements) == ["mask"]
    agg = report.agreements["mask"]["tumor_present"]
    assert agg.n == 48 and agg.correct == 47 and agg.missing == 1


def test_bad_prediction_file_names_file_and_line(tmp_path, phantom_dir):
    pred = tmp_path / "p.jsonl"
    pred.write_text('{"file_name": "images/a.png", "findings": null}\n{"findings": {}}\n')
    with pytest.raises(DataError, match=r"p\.jsonl, line 2: .*file_name"):
        evaluate_captions(CaptionEvalConfig(pred=pred, ref=phantom_dir))
    pred.write_text('{"file_name": "a.png", "findings": {"modality": "brain_mri", "tumor_present": "maybe"}}\n')
    with pytest.raises(DataError, match="line 1: invalid findings"):
        evaluate_captions(CaptionEvalConfig(pred=pred, ref=phantom_dir))
    csv = tmp_path / "x.csv"
    csv.write_text("a")
    with pytest.raises(DataError, match="unsupported"):
        evaluate_captions(CaptionEvalConfig(pred=csv, ref=phantom_dir))
