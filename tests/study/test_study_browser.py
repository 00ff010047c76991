"""A reader reads a small study in a real browser (headless Chromium), by keyboard; then the study is scored."""

from __future__ import annotations

import pytest

from synthmed.study import StudyCreateConfig, create_study, score_study
from synthmed.study.layout import read_key
from synthmed.study.store import AnswerStore
from synthmed.testing.browser import CHROMEDRIVER, CHROMIUM, SKIP_REASON_DRIVER
from synthmed.testing.study import free_port, start_server, stop

pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None, reason=SKIP_REASON_DRIVER)


def _browser():
    from synthmed.testing.browser import selenium_chromium

    return selenium_chromium(window=(1200, 800))


def _wait_count(driver, text: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 30).until(lambda d: d.find_element("id", "count").text == text)


def _keys(driver, keys: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(keys).perform()


def test_reading_a_study_by_keyboard_then_scoring_it(study_data, tmp_path):
    from selenium.webdriver.common.keys import Keys

    real, fake = study_data
    study = create_study(StudyCreateConfig(real=real, fake=fake, out=tmp_path / "s", n_real=3, n_fake=3,
                                           questions=["realism", "findings"]))
    port = free_port()
    proc, links = start_server(study, port, "--readers", "ann")
    url = links["ann"]
    driver = _browser()
    typed = []
    try:
        driver.get(url)
        _wait_count(driver, "1 / 6")
        # the image is drawn: the canvas holds the study's 32 px image, not a blank
        drawn = driver.execute_script(
            "const c = document.getElementById('image'); const d = c.getContext('2d').getImageData(0, 0, c.width, "
            "c.height).data; let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i]; return [c.width, s];")
        assert drawn[0] == 32 and drawn[1] > 0
        assert driver.find_element("id", "submit").get_attribute("disabled") is not None
        for i in range(3):
            # confidence 6 then Backspace back to it and 2 instead; realism 4; tumour yes (1); hemisphere right (2)
            _keys(driver, "6" + Keys.BACKSPACE + "2" + "4" + "1" + "2")
            assert driver.find_element("id", "submit").get_attribute("disabled") is None
            _keys(driver, Keys.ENTER)
            typed.append({"confidence": 2, "realism": 4, "tumor_present": True, "hemisphere": "right"})
            _wait_count(driver, f"{i + 2} / 6")
        driver.quit()  # the reader closes the browser...
        driver = _browser()
        driver.get(url)  # ...and comes back later: the study resumes where they stopped
        _wait_count(driver, "4 / 6")
        for i in range(3, 6):
            _keys(driver, "5" + "1" + "2" + Keys.ENTER)  # confidence 5, realism 1, no tumour: hemisphere skipped
            typed.append({"confidence": 5, "realism": 1, "tumor_present": False, "hemisphere": None})
            if i < 5:
                _wait_count(driver, f"{i + 2} / 6")
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(driver, 30).until(lambda d: d.find_element("id", "done").is_displayed())
        shot = tmp_path / "done.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 1000
    finally:
        driver.quit()
        stop(proc)
    stored = AnswerStore(study).answers()
    assert [{k: a[k] for k in ("confidence", "realism", "tumor_present", "hemisphere")} for a in stored] == typed
    assert all(a["seconds"] is not None and a["seconds"] >= 0 for a in stored)
    result = score_study(study, n_boot=50)
    assert result.pooled.n == 6 and list(result.readers) == ["ann"]
    # ann called the first three images real (2) and the last three synthetic (5)
    key = read_key(study)
    correct = sum((a["confidence"] >= 4) == (key.items[a["item"]].origin == "synthetic") for a in stored)
    assert result.readers["ann"].metrics["accuracy"].value == pytest.approx(correct / 6)
