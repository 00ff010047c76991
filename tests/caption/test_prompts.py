import json

import pytest

from synthmed.caption.prompts import TEMPLATES, ReplyError, findings_from_reply, template_for
from synthmed.findings import BrainMRIFindings, GIEndoscopyFindings
from synthmed.llm.cache import ReplyCache, digest
from synthmed.llm.replies import ReplyFormatError, extract_json_object

GOOD = {"tumor_present": True, "tumor_type": None, "hemisphere": "Left", "lobe": "frontal", "size_mm": 45,
        "size_category": "large", "shape": "irregular", "intensity": "ring-enhancing", "orientation": "oblique",
        "edema": True, "mass_effect": None}


def test_templates_are_versioned_and_define_the_convention():
    brain = template_for("brain_mri")
    assert brain.id == "brain_mri-v1"
    assert "patient's LEFT is on the RIGHT side of the image" in brain.user
    for name in BrainMRIFindings.model_fields:
        if name != "modality":
            assert f'"{name}"' in brain.user and name in brain.schema["properties"]
    assert set(TEMPLATES) == {"brain_mri", "gi_endoscopy", "generic"}
    with pytest.raises(ValueError, match="known: brain_mri"):
        template_for("ct")


def test_reply_in_code_fence_with_prose_is_read():
    text = "Sure! Here are the findings:\n```json\n" + json.dumps(GOOD) + "\n```\nHope this helps."
    f = findings_from_reply(text, "brain_mri")
    assert f == BrainMRIFindings(tumor_present=True, hemisphere="left", lobe="frontal", size_mm=45, shape="irregular",
                                 intensity="ring-enhancing", orientation="oblique", edema=True)


@pytest.mark.parametrize("reply, message", [
    ("I cannot see a tumour.", "no JSON object"),
    ('{"tumor_present": true, "hemisphere": "left"', "malformed or incomplete"),
    ('{"hemisphere": "left"}', "'tumor_present' must be true or false"),
    ('{"tumor_present": "yes"}', "'tumor_present' must be true or false"),
    ('{"tumor_present": true, "tumour_side": "left"}', "keys outside the findings schema"),
    ('{"tumor_present": true, "hemisphere": "middle"}', "hemisphere"),
    ('{"tumor_present": true, "size_mm": 12, "size_category": "large"}', "contradicts size_mm"),
    ('{"tumor_present": false, "hemisphere": "left"}', "tumor_present is false"),
])
def test_bad_replies_are_errors_not_defaults(reply, message):
    with pytest.raises(ReplyError, match=message):
        findings_from_reply(reply, "brain_mri")


def test_no_tumour_reply_with_nulls_and_gi_reply():
    f = findings_from_reply('{"tumor_present": false, "hemisphere": null, "edema": false}', "brain_mri")
    assert f == BrainMRIFindings(tumor_present=False)
    gi = findings_from_reply('{"procedure": "colonoscopy", "polyp_count": 2, "size_ranges_mm": ["5-10"], '
                             '"locations": ["center-left"], "instrument": null}', "gi_endoscopy")
    assert gi == GIEndoscopyFindings(procedure="colonoscopy", polyp_count=2, size_ranges_mm=("5-10",),
                                     locations=("center-left",))


def test_extract_json_skips_broken_prefix():
    assert extract_json_object('{"a": } then {"b": 1}') == {"b": 1}
    with pytest.raises(ReplyFormatError):
        extract_json_object("[1, 2]")


def test_reply_cache_survives_a_torn_line(tmp_path):
    path = tmp_path / "c.jsonl"
    cache = ReplyCache(path)
    cache.put(digest("a"), {"x": 1})
    with path.open("a") as fh:
        fh.write('{"key": "torn", "val')  # a write cut short by a kill
    again = ReplyCache(path)
    assert again.get(digest("a")) == {"x": 1} and "torn" not in again
    again.put(digest("b"), {"y": 2})
    assert ReplyCache(path).get(digest("b")) == {"y": 2}
    assert digest("ab", "c") != digest("a", "bc")
