"""The hf: captioner with a tiny LLaVA built offline, saved and loaded from disk like a hub checkpoint."""

from __future__ import annotations

import pytest

from synthmed.caption import caption_dataset, get_captioner
from synthmed.caption.hf import HFCaptioner
from synthmed.data import read_records
from synthmed.errors import CaptionError, ConfigError
from synthmed.testing.vlm import write_tiny_llava


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory):
    return write_tiny_llava(tmp_path_factory.mktemp("vlm") / "tiny-llava")


def test_tiny_vlm_end_to_end_records_gibberish_as_unparseable(tiny_llava, small_dir, monkeypatch):
    before = read_records(small_dir)
    with pytest.raises(CaptionError, match="none of the 4 rows") as caught:
        caption_dataset(small_dir, f"hf:{tiny_llava}", batch_size=3, progress=False, max_new_tokens=12)
    s = caught.value.summary
    assert s.rows == 4 and s.failed == 4 and s.captioned == 0
    after = read_records(small_dir)
    assert [r.findings for r in after] == [r.findings for r in before]  # never a default finding
    for r in after:
        assert r.caption_error.startswith("unparseable reply after 2 attempts")
        raw = r.model_extra["caption_raw"]
        assert raw and "--- retry ---" in raw
    # A rerun is answered from the cache: the model is not even loaded.
    monkeypatch.setattr(HFCaptioner, "load", lambda self: pytest.fail("model loaded despite the cache"))
    with pytest.raises(CaptionError) as caught:
        caption_dataset(small_dir, f"hf:{tiny_llava}", batch_size=3, progress=False, max_new_tokens=12)
    assert caught.value.summary.cached == 4


def test_batches_and_single_images_agree(tiny_llava, small_dir):
    from synthmed.caption import CaptionInput
    from synthmed.data import ImageDataset

    ds = ImageDataset(small_dir)
    items = [CaptionInput(r.file_name, ds.image(r)) for r in ds.records[:2]]
    cap = get_captioner(f"hf:{tiny_llava}", max_new_tokens=10, max_parse_retries=0)
    batched = [r.raw for r in cap.caption(items)]
    single = [cap.caption([it])[0].raw for it in items]
    assert batched == single and all(batched)


def test_hf_option_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such model directory"):
        get_captioner(f"hf:{tmp_path}/missing")
    with pytest.raises(ConfigError, match="--trust-remote-code"):
        get_captioner("hf:AIDC-AI/Ovis2-34B")
    with pytest.raises(ConfigError, match="dtype"):
        get_captioner("hf:some/model", dtype="int3")
