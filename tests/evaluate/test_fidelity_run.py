"""``evaluate fidelity`` on phantom datasets: a degraded generator scores worse, every number is recorded,
real features are cached, the per-finding breakdown and the real-vs-real floor are there."""

import json

import numpy as np
import pytest
from scipy import ndimage
from typer import Typer
from typer.testing import CliRunner

from synthmed.data.dataset import DatasetWriter, ImageDataset
from synthmed.data.phantom import PhantomConfig, generate_phantom
from synthmed.errors import ConfigError, DataError
from synthmed.evaluate.fidelity_run import evaluate_fidelity
from synthmed.results import FidelityResult, read_result


def as_generated(src, dst, degrade=False, seed=0):
    """Copy a phantom set as if a generator made it from its findings (optionally blurred + noised)."""
    ds, writer = ImageDataset(src), DatasetWriter(dst)
    rng = np.random.default_rng(seed)
    for rec in ds.records:
        img = ds.image(rec)
        if degrade:
            img = ndimage.gaussian_filter(img.astype(np.float32), 1.5) + rng.normal(0, 25, img.shape)
            img = np.clip(img, 0, 255).astype(np.uint8)
        writer.add(rec.file_name.split("/")[-1], img, source="generated:test", prompt=rec.text,
                   requested_findings=rec.findings, split=rec.split)
    return dst


@pytest.fixture(scope="module")
def sets(tmp_path_factory, phantom_dir):
    """real: the shared 48-slice phantom (seed 5); good: another phantom (seed 12) as generated rows; bad: degraded."""
    root = tmp_path_factory.mktemp("fidelity")
    generate_phantom(PhantomConfig(out=root / "src", n=32, size=96, seed=12, workers=1), progress=False)
    good = as_generated(root / "src", root / "good")
    bad = as_generated(root / "src", root / "bad", degrade=True)
    return phantom_dir, good, bad


@pytest.fixture(scope="module")
def runs(sets, tmp_path_factory):
    real, good, bad = sets
    out = tmp_path_factory.mktemp("out")
    common = dict(real=real, features="efficientnet-lite0", cache_dir=out / "cache", kid_subsets=20)
    r_good = evaluate_fidelity(dict(common, fake=good, out=out / "good.json", bootstrap=30, min_group=5))
    r_bad = evaluate_fidelity(dict(common, fake=bad, out=out / "bad.json", bootstrap=0, per_finding=False))
    return r_good, r_bad, out


def test_degraded_generator_scores_worse(runs):
    good, bad, _ = runs
    g, b = good.metrics, bad.metrics
    assert g["fid"].value < b["fid"].value
    assert g["kid"].value < b["kid"].value
    assert g["precision"].value > b["precision"].value and g["coverage"].value > b["coverage"].value
    assert good.real_vs_real.metrics["fid"].value < b["fid"].value


def test_metrics_json_records_everything(runs):
    good, _, out = runs
    on_disk = json.loads((out / "good.json").read_text())
    assert on_disk["schema_version"] == 2 and on_disk["kind"] == "evaluate.fidelity"
    assert on_disk["metrics"]["fid"]["value"] == pytest.approx(good.metrics["fid"].value)
    assert read_result(out / "good.json", FidelityResult) == good
    ext = on_disk["extractor"]
    assert ext["name"] == "efficientnet-lite0" and len(ext["weights"]["sha256"]) == 64
    assert ext["preprocessing"]["resize"] and ext["preprocessing"]["quantisation"].startswith("none")
    assert on_disk["comparable_with_published"] is False
    assert any("NOT comparable" in w for w in on_disk["warnings"])
    assert (on_disk["n_real"], on_disk["n_fake"]) == (48, 32)
    assert on_disk["seeds"]["kid"] == 2020 and on_disk["metrics"]["kid"]["detail"]["subset_size"] == 32
    assert any("using subsets of 32" in w for w in on_disk["warnings"])
    assert any("rank-deficient" in w for w in on_disk["warnings"])           # n=32 <= 1280 dims
    assert on_disk["provenance"]["packages"]["torch"] and "torchmetrics" in on_disk["provenance"]["extra_packages"]
    assert set(on_disk["conventions"]) >= {"fid", "kid", "precision_recall", "density_coverage"}
    assert "inception_score" in on_disk["metrics"]                            # EfficientNet has ImageNet logits


def test_bootstrap_intervals(runs):
    m = runs[0].metrics
    for name in ("fid", "precision", "recall", "f1", "density", "coverage"):
        lo, hi = m[name].ci95
        assert lo < hi, name
    assert m["kid"].ci95 is not None and m["kid"].ci95[0] < m["kid"].ci95[1]
    assert runs[0].bootstrap["replicates"] == 30
    for name in ("fid", "precision", "coverage"):
        lo, hi = m[name].ci95
        assert lo <= m[name].value <= hi, name
    assert "re-centred" in runs[0].bootstrap["method"]


def test_real_vs_real_floor_and_breakdown(runs):
    good = runs[0]
    floor = good.real_vs_real
    assert floor.n == 24 and "n=24 < n_fake=32" in floor.note
    bd = good.breakdown
    attrs = {(e["attribute"], e["value"]) for e in bd["per_finding"]}
    assert ("tumor_present", "true") in attrs and ("tumor_present", "false") in attrs
    for e in bd["per_finding"]:
        assert e["n_real"] >= 5 and e["n_fake"] >= 5 and e["fd"] > 0
    assert bd["per_finding_skipped"] and all(min(e["n_real"], e["n_fake"]) < 5 for e in bd["per_finding_skipped"])
    assert bd["prompts_total"] >= 1


def test_real_features_are_cached(runs, sets):
    good, _, out = runs
    assert good.real["cache_file"] and good.real["data_hash"]
    again = evaluate_fidelity(dict(real=sets[0], fake=sets[1], features="efficientnet-lite0", cache_dir=out / "cache",
                                   bootstrap=0, kid_subsets=20, per_finding=False, real_vs_real=False))
    assert again.real["cache_hit"] is True and again.real["cache_file"] == good.real["cache_file"]
    assert again.metrics["fid"].value == pytest.approx(good.metrics["fid"].value, rel=1e-9)
    assert again.metrics["fid"].ci95 is None
    assert len(list((out / "cache").glob("*.safetensors"))) == 1           # fake features are not cached


def test_errors_name_the_input(tmp_path, sets):
    with pytest.raises(DataError, match="dataset directory not found"):
        evaluate_fidelity(dict(real=tmp_path / "nope", fake=sets[1]))
    with pytest.raises(ConfigError, match="unknown feature extractor 'vgg'"):
        evaluate_fidelity(dict(real=sets[0], fake=sets[1], features="vgg"))
    with pytest.raises(ConfigError, match="bootstrap"):
        evaluate_fidelity(dict(real=sets[0], fake=sets[1], bootstrap=-1))


def _cli_app():
    """The real ``synthmed`` app when ``evaluate fidelity`` is registered there, else a stand-in group."""
    from typer.main import get_command

    from synthmed.cli.main import app

    group = get_command(app)
    if "evaluate" in group.commands and "fidelity" in group.commands["evaluate"].commands:
        return app, ["evaluate"]
    from synthmed.cli.evaluate_fidelity import fidelity_command, privacy_command

    stand_in = Typer()
    stand_in.command("fidelity")(fidelity_command)
    stand_in.command("privacy")(privacy_command)
    return stand_in, []


def test_cli_command(tmp_path, sets, runs):
    app, prefix = _cli_app()
    out = tmp_path / "m.json"
    r = CliRunner().invoke(app, [*prefix, "fidelity", "--real", str(sets[0]), "--fake", str(sets[1]), "--features",
                                 "efficientnet-lite0", "--out", str(out), "--bootstrap", "0", "--kid-subsets", "5",
                                 "--cache-dir", str(runs[2] / "cache")])
    assert r.exit_code == 0, r.output
    assert "not comparable with published FIDs" in r.output and "real-vs-real floor" in r.output
    assert json.loads(out.read_text())["metrics"]["fid"]["value"] > 0
    r = CliRunner().invoke(app, [*prefix, "fidelity", "--real", str(tmp_path / "nope"), "--fake", str(sets[1])])
    assert isinstance(r.exception, DataError) and "dataset directory not found" in str(r.exception)
    r = CliRunner().invoke(app, [*prefix, "privacy", "--help"])
    assert r.exit_code == 0 and "--train" in r.output
