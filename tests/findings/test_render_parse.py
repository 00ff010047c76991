import itertools

import pytest

from synthmed.findings import BrainMRIFindings, GIEndoscopyFindings, parse_text, render_text
from synthmed.findings.parse import FindingsParseError
from synthmed.findings.schema import (
    HEMISPHERES,
    INTENSITIES,
    LOBES,
    ORIENTATIONS,
    SHAPES,
    SIZE_CATEGORIES,
    findings_from_dict,
    size_category_for,
)


def test_seed_000_style_prompt():
    f = BrainMRIFindings(tumor_present=True, hemisphere="left", lobe="frontal", size_category="large",
                         shape="irregular", intensity="ring-enhancing", orientation="oblique", edema=True)
    assert render_text(f) == ("Axial T1 contrast-enhanced MRI. A large irregular ring-enhancing tumour in the "
                              "left frontal lobe, oriented obliquely, with surrounding edema.")


@pytest.mark.parametrize("edema,mass", list(itertools.product([None, True, False], repeat=2)))
def test_round_trip_every_attribute_combination(edema, mass):
    for hemi, lobe, size, shape, inten, orient in itertools.product(
            HEMISPHERES, LOBES, SIZE_CATEGORIES, SHAPES, INTENSITIES, ORIENTATIONS + (None,)):
        f = BrainMRIFindings(tumor_present=True, hemisphere=hemi, lobe=lobe, size_category=size, shape=shape,
                             intensity=inten, orientation=orient, edema=edema, mass_effect=mass)
        assert parse_text(render_text(f)) == f, render_text(f)


def test_round_trip_with_mm_and_type_and_partial_findings():
    f = BrainMRIFindings(tumor_present=True, tumor_type="meningioma", size_mm=23.0, hemisphere="right")
    text = render_text(f, include_mm=True)
    assert "(23 mm)" in text and "meningioma" in text
    assert parse_text(text) == f
    healthy = BrainMRIFindings(tumor_present=False)
    assert parse_text(render_text(healthy)) == healthy


def test_parser_reads_free_wording():
    f = parse_text("There is a big, oval-shaped hyper-intense mass in the right temporal lobe with oedema "
                   "but no mass effect.")
    assert (f.size_category, f.shape, f.intensity, f.hemisphere, f.lobe, f.edema, f.mass_effect) == (
        "large", "oval", "hyperintense", "right", "temporal", True, False)
    assert parse_text("Normal brain MRI, no tumor.").tumor_present is False


def test_parser_refuses_text_without_presence_and_contradictions():
    with pytest.raises(FindingsParseError, match="whether a tumour is present"):
        parse_text("Axial T1 MRI of the head.")
    with pytest.raises(FindingsParseError, match="contradictory"):
        parse_text("A small (45 mm) tumour in the left frontal lobe.")


def test_schema_validation():
    with pytest.raises(ValueError, match="tumour attributes are set"):
        BrainMRIFindings(tumor_present=False, hemisphere="left")
    with pytest.raises(ValueError):
        BrainMRIFindings(tumor_present=True, hemisphere="up")
    assert BrainMRIFindings(tumor_present=True, size_mm=39.9).size_category == "medium"
    assert size_category_for(40.0) == "large" and size_category_for(19.99) == "small"
    with pytest.raises(ValueError, match="modality"):
        findings_from_dict({"tumor_present": True})
    assert findings_from_dict(BrainMRIFindings(tumor_present=True).to_dict()) == BrainMRIFindings(tumor_present=True)


def test_gi_round_trip_and_imageclef_prompts():
    g = GIEndoscopyFindings(procedure="colonoscopy", polyp_count=2, size_ranges_mm=("5-10", "11-20"),
                            locations=("upper-right", "center-right"), instrument="biopsy forceps")
    assert parse_text(render_text(g), "gi_endoscopy") == g
    p = parse_text("Generate an image with 1 polyp.", "gi_endoscopy")
    assert p.polyp_count == 1
    p = parse_text("Generate an image with polyps of size 5-10mm and 11-20mm.", "gi_endoscopy")
    assert p.size_ranges_mm == ("5-10", "11-20")
    p = parse_text("Generate an image with an abnormality located in the upper-right, lower-right, and "
                   "center-right.", "gi_endoscopy")
    assert set(p.locations) == {"upper-right", "lower-right", "center-right"}
