"""Each stage result's schema is pinned: a golden file per kind round-trips, schema-1 files (the shapes
producers wrote before schema 2) are upgraded, and a bad or newer file is an error naming it.

Regenerate the golden files after a deliberate schema change with ``SYNTHMED_UPDATE_GOLDEN=1 pytest
tests/results`` and review the diff."""

import json
import os
from pathlib import Path

import pytest

from synthmed.errors import DataError
from synthmed.pipeline.registry import get_stage, stage_kinds
from synthmed.results import (
    AdherenceResult,
    Agreement,
    CaptionerScores,
    CaptionsResult,
    DownstreamComparison,
    DownstreamCondition,
    DownstreamResult,
    ExplainResult,
    ExplainScores,
    FidelityResult,
    LocalizationResult,
    LocalizationTSTRResult,
    MaskAdherenceResult,
    Metric,
    PrivacyResult,
    ReaderScores,
    RealVsReal,
    StudyResult,
    read_result,
    write_result,
)

HERE = Path(__file__).parent
AGREE = Agreement(value=0.75, ci95=(0.41, 0.93), n=8, correct=6, missing=1,
                  confusion=[{"reference": True, "predicted": True, "count": 6}])

EXAMPLES = {
    "evaluate.fidelity": FidelityResult(
        extractor={"name": "efficientnet-lite0"}, comparable_with_published=False, real={"n": 48}, fake={"n": 32},
        n_real=48, n_fake=32,
        metrics={"fid": Metric(value=12.5, ci95=(10.0, 15.0)),
                 "precision": Metric(value=0.5, ci95=(0.3, 0.7), detail={"k": 3})},
        real_vs_real=RealVsReal(n=24, seed=0, metrics={"fid": Metric(value=2.0)}, note="n=24 < n_fake=32"),
        warnings=["small n"]),
    "evaluate.adherence": AdherenceResult(n=8, table={"Tumor": 0.75}, attributes={"tumor_present": AGREE},
                                          judge_real_test_accuracy={"tumor_present": 0.97}),
    "evaluate.captions": CaptionsResult(n_reference=8, table={"mask": {"Tumor": 0.75}},
                                        captioners={"mask": CaptionerScores(attributes={"tumor_present": AGREE})}),
    "evaluate.downstream": DownstreamResult(
        test={"n": 20, "patients": 10}, classes=["no_tumor", "tumor"], bootstrap={"replicates": 100},
        conditions={"TRTR": DownstreamCondition(n_real=40, n_synthetic=0, seeds=[0],
                                                metrics={"auroc": Metric(value=0.9, ci95=(0.8, 0.97))})},
        comparisons={"TSTR/TRTR": DownstreamComparison(kind="ratio", a="TSTR", b="TRTR",
                                                       metrics={"auroc": Metric(value=0.95, ci95=(0.9, 1.0))})}),
    "evaluate.privacy": PrivacyResult(
        memorisation=Metric(value=0.1, ci95=(0.02, 0.4), n=10, detail={"likely_copies": 1}), n_synthetic=10,
        n_train=40, n_reference=10, reference="split == 'test' rows", rule="closer than every held-out image",
        spaces={"pixels": {"threshold": 0.1}}),
    "localize.predict": LocalizationResult(threshold=0.5, n_images=6, n_pixel_images=6,
                                           metrics={"pixel_auroc": Metric(value=0.91, n=6)}, split="test"),
    "explain": ExplainResult(prompt_version="explain-v1", model="api:m", modes=["zero-shot"], n_images=6,
                             scores={"zero-shot": ExplainScores(n=6, parsed_fraction=1.0,
                                                                attributes={"tumor_present": AGREE})}),
    "evaluate.mask-adherence": MaskAdherenceResult(
        n=8, n_lesion=6, threshold=0.4,
        metrics={"dice": Metric(value=0.7, ci95=(0.6, 0.8), n=6), "centre_inside": Metric(value=0.83, n=6)},
        groups={"large": {"dice": Metric(value=0.8, n=3)}}, reference={"dice": Metric(value=0.75, n=10)}),
    "evaluate.localization-tstr": LocalizationTSTRResult(
        conditions={"TRTR": {"pixel_auroc": Metric(value=0.98, ci95=(0.97, 0.99), n=20)},
                    "TSTR": {"pixel_auroc": Metric(value=0.95, ci95=(0.93, 0.97), n=20)}},
        comparisons={"TSTR/TRTR": {"pixel_auroc": Metric(value=0.97, ci95=(0.95, 0.99), n=20)}},
        training_pairs={"TRTR": {"real": 40, "synthetic": 0}, "TSTR": {"real": 0, "synthetic": 40}},
        n_test=20, n_test_patients=5, steps=100),
    "study": StudyResult(
        n_images=8, n_real=4, n_synthetic=4, questions=["realism", "findings"],
        readers={"ann": ReaderScores(n=8, metrics={"accuracy": Metric(value=0.625, ci95=(0.31, 0.86), n=8)})},
        pooled=ReaderScores(n=8, metrics={"auroc": Metric(value=0.75, ci95=(0.4, 1.0), n=8),
                                          "fleiss_kappa": Metric(value=None, n=0)}),
        adherence={"synthetic": {"tumor_present": AGREE}}, bootstrap={"n": 100, "seed": 0}),
}


def _result_class(kind):
    sdef = get_stage(kind)
    return sdef._load(sdef.result)


def test_every_stage_kind_with_a_result_has_an_example():
    assert {k for k in stage_kinds() if get_stage(k).result} == set(EXAMPLES)


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_golden_file_round_trips(kind, tmp_path):
    cls, example = _result_class(kind), EXAMPLES[kind]
    assert isinstance(example, cls) and example.kind == kind and example.schema_version == 2
    golden = HERE / "golden" / f"{kind}.json"
    dumped = example.model_dump(mode="json")
    if os.environ.get("SYNTHMED_UPDATE_GOLDEN"):
        golden.write_text(json.dumps(dumped, indent=2, sort_keys=True) + "\n")
    assert dumped == json.loads(golden.read_text()), f"{kind}: the schema changed; see this file's docstring"
    assert read_result(golden, cls) == example
    write_result(tmp_path / cls.FILE, example)
    assert get_stage(kind).read_result(tmp_path) == example


#: Kinds added after schema 2: they never wrote a schema-1 file.
BORN_AT_SCHEMA_2 = {"study", "evaluate.mask-adherence", "evaluate.localization-tstr"}


def test_kinds_without_schema_1_refuse_unversioned_files(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"n_images": 1}))
    for kind in BORN_AT_SCHEMA_2:
        with pytest.raises(DataError, match="no schema_version") as err:
            read_result(path, _result_class(kind))
        assert str(path) in str(err.value)


@pytest.mark.parametrize("kind", sorted(set(EXAMPLES) - BORN_AT_SCHEMA_2))
def test_schema_1_files_are_upgraded(kind):
    """Files in the shape each producer wrote before schema 2 (no schema_version) still read."""
    res = read_result(HERE / "v1" / f"{kind}.json", _result_class(kind))
    assert res.schema_version == 2 and res.headline("s"), kind
    for _, metric in res.headline("s"):
        assert isinstance(metric, Metric)


def test_old_shapes_keep_their_numbers():
    fid = read_result(HERE / "v1" / "evaluate.fidelity.json", FidelityResult)
    assert fid.metrics["fid"].ci95 == (10.0, 15.0) and fid.metrics["kid"].value == 0.01
    assert fid.metrics["kid"].detail["subset_size"] == 32 and fid.metrics["precision"].detail["k"] == 3
    assert fid.real_vs_real.metrics["fid"].value == 2.0 and fid.real_vs_real.metrics["precision"].detail["k"] == 3
    down = read_result(HERE / "v1" / "evaluate.downstream.json", DownstreamResult)
    assert down.conditions["TRTR"].metrics["auroc"].ci95 == (0.8, 0.97)
    assert down.conditions["TRTR"].metrics["auroc"].detail == {"seed_std": 0.01}
    adh = read_result(HERE / "v1" / "evaluate.adherence.json", AdherenceResult)
    assert adh.attributes["tumor_present"].value == 0.75 and adh.attributes["tumor_present"].correct == 6
    priv = read_result(HERE / "v1" / "evaluate.privacy.json", PrivacyResult)
    assert priv.memorisation.value == 0.1 and priv.likely_copies == 1
    loc = read_result(HERE / "v1" / "localize.predict.json", LocalizationResult)
    assert loc.metrics["pixel_auroc"].value == 0.91 and "threshold" not in loc.metrics


def test_bad_and_newer_files_name_themselves(tmp_path):
    bad = tmp_path / "fidelity.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="cannot read") as err:
        read_result(bad, FidelityResult)
    assert str(bad) in str(err.value)
    bad.write_text(json.dumps({"schema_version": 3}))
    with pytest.raises(DataError, match="newer synthmed"):
        read_result(bad, FidelityResult)
    bad.write_text(json.dumps({"schema_version": 2, "kind": "evaluate.fidelity"}))
    with pytest.raises(DataError, match="not a valid evaluate.fidelity result: .*metrics"):
        read_result(bad, FidelityResult)
    bad.write_text(json.dumps([1, 2]))
    with pytest.raises(DataError, match="JSON object"):
        read_result(bad, FidelityResult)


def test_metric_text_has_three_decimals_and_a_dash_for_missing():
    assert Metric(value=0.87912, ci95=(0.8333, 0.91)).text() == "0.879 [0.833, 0.910]"
    assert Metric(value=None).text() == "—" and Metric(value=float("nan")).text() == "—"


def test_a_run_directory_from_before_schema_2_still_renders(tmp_path):
    from synthmed.report import write_report

    run = tmp_path / "run"
    (run / "fid").mkdir(parents=True)
    (run / "fid" / "fidelity.json").write_text((HERE / "v1" / "evaluate.fidelity.json").read_text())
    (run / "run.json").write_text(json.dumps({"config": {"stages": [{"name": "fid", "kind": "evaluate.fidelity"}]},
                                              "stages": {"fid": {"status": "ran"}}}))
    html = write_report(run).read_text()
    assert "Fréchet distance (fid, efficientnet-lite0)" in html and "12.5" in html
    assert "fid, real vs real (floor)" in html


def test_a_damaged_result_in_a_run_names_the_file(tmp_path):
    from synthmed.report import write_report

    run = tmp_path / "run"
    (run / "fid").mkdir(parents=True)
    (run / "fid" / "fidelity.json").write_text(json.dumps({"schema_version": 2, "kind": "evaluate.fidelity"}))
    (run / "run.json").write_text(json.dumps({"config": {"stages": [{"name": "fid", "kind": "evaluate.fidelity"}]},
                                              "stages": {"fid": {"status": "ran"}}}))
    with pytest.raises(DataError, match="fidelity.json"):
        write_report(run)
