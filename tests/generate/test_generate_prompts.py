"""Prompt sources: findings grids, balanced-like-a-dataset, files, free text."""

from __future__ import annotations

import pytest

from synthmed.errors import ConfigError, DataError
from synthmed.findings import BrainMRIFindings, parse_text
from synthmed.generate.prompts import balanced_like, collect_prompts, findings_grid, parse_grid_spec
from synthmed.testing.ldm import write_disc_dataset


def test_default_grid_is_presence_by_hemisphere_size_shape_balanced():
    specs = findings_grid("default")
    present = [s for s in specs if s.findings.tumor_present]
    absent = [s for s in specs if not s.findings.tumor_present]
    assert len(present) == 2 * 3 * 4 and len(absent) == len(present)
    combos = {(s.findings.hemisphere, s.findings.size_category, s.findings.shape) for s in present}
    assert len(combos) == 24
    # The prompt is the rendering of the findings, and parses back to them.
    for s in present:
        parsed = parse_text(s.text)
        assert (parsed.hemisphere, parsed.size_category, parsed.shape) == (
            s.findings.hemisphere, s.findings.size_category, s.findings.shape)


def test_grid_with_chosen_values_and_no_balancing():
    specs = findings_grid("hemisphere=left,right; size=small; intensity=ring-enhancing", balance_presence=False)
    assert len(specs) == 3
    assert specs[0].text == ("Axial T1 contrast-enhanced MRI. A small ring-enhancing tumour in the left hemisphere.")
    assert specs[-1].findings == BrainMRIFindings(tumor_present=False)
    only_present = findings_grid("presence=present x hemisphere")
    assert [s.findings.hemisphere for s in only_present] == ["left", "right"]


@pytest.mark.parametrize(("spec", "message"), [
    ("colour", r"unknown attribute 'colour'; valid: tumor_present"),
    ("hemisphere=middle", r"hemisphere cannot be 'middle'; valid: left, right"),
    ("edema=maybe", r"edema cannot be 'maybe'; valid: true, false"),
])
def test_bad_grid_specs_list_valid_choices(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_grid_spec(spec)


def test_balanced_like_dataset_follows_its_findings(tmp_path):
    root = write_disc_dataset(tmp_path / "d", n=9)
    specs = balanced_like(root)
    assert len(specs) == 9
    assert sum(not s.findings.tumor_present for s in specs) == 3
    drawn = collect_prompts(prompts=[], prompts_file=None, findings_grid_spec=f"balanced:{root}", num_prompts=20,
                            seed=1)
    assert len(drawn) == 20 and {s.text for s in drawn} <= {s.text for s in specs}


def test_balanced_like_needs_findings(tmp_path):
    import numpy as np

    from synthmed.data.dataset import DatasetWriter

    DatasetWriter(tmp_path / "d").add("a.png", np.zeros((8, 8), np.uint8), text="x")
    with pytest.raises(DataError, match="no row has findings"):
        balanced_like(tmp_path / "d")


def test_prompts_file_and_free_text(tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("# comment\nAxial T1 contrast-enhanced MRI. No tumour is visible.\n\na photo of a cat\n")
    specs = collect_prompts(prompts=[], prompts_file=f, findings_grid_spec=None)
    assert [s.findings for s in specs] == [BrainMRIFindings(tumor_present=False), None]
    (tmp_path / "empty.txt").write_text("\n# nothing\n")
    with pytest.raises(ConfigError, match="empty.txt: no prompts"):
        collect_prompts(prompts=[], prompts_file=tmp_path / "empty.txt", findings_grid_spec=None)
