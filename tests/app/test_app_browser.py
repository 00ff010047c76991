"""The app in a real browser (headless Chromium driven by Selenium through Debian's chromium-driver)."""

from __future__ import annotations

import pytest

from synthmed.app import generate as G
from synthmed.app.models import AppConfig
from synthmed.testing.browser import CHROMEDRIVER, CHROMIUM, SKIP_REASON_DRIVER
from synthmed.testing.study import free_port

pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None, reason=SKIP_REASON_DRIVER)


def test_generate_localise_and_open_a_run_in_the_browser(app_sd, app_localizer, phantom_png, tiny_run, tmp_path):
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from synthmed.app.ui import launch
    from synthmed.testing.browser import selenium_chromium

    cfg = AppConfig(model=str(app_sd), localizer=app_localizer, device="cpu", port=free_port())
    app = launch(cfg, block=False)
    url = app.local_url
    driver = selenium_chromium(window=(1400, 1000))
    wait = WebDriverWait(driver, 120)

    def css(selector):
        return driver.find_elements("css selector", selector)

    def prompt() -> str:
        found = css("#prompt textarea")
        return found[0].get_attribute("value") if found else ""

    try:
        driver.get(url)
        wait.until(lambda d: "left frontal" in prompt())
        # the form renders the prompt live: no tumour, then a tumour again
        css("#present input")[0].click()
        wait.until(lambda d: "left frontal" not in prompt())
        assert prompt() == G.prompt_for(G.findings_from_form(False))
        css("#present input")[0].click()
        wait.until(lambda d: "left frontal" in prompt())
        count = css("#n-images input[type=number]")[0]
        count.send_keys(Keys.CONTROL, "a")
        count.send_keys("2", Keys.TAB)
        css("#generate-button")[0].click()
        wait.until(lambda d: len(css("#gallery img")) >= 2)
        assert "judge:" in driver.find_element("id", "gallery").text
        # a click before any upload: a message in the app, not a stack trace
        driver.find_element("xpath", "//button[@role='tab'][contains(., 'Localise')]").click()
        wait.until(lambda d: css("#localise-button") and css("#localise-button")[0].is_displayed())
        css("#localise-button")[0].click()
        wait.until(lambda d: "upload a scan first" in d.page_source)
        assert "Traceback" not in driver.page_source
        css("#upload input[type=file]")[0].send_keys(str(phantom_png))
        wait.until(lambda d: phantom_png.stem in d.find_element("id", "upload").text)  # name and suffix on 2 lines
        css("#localise-button")[0].click()
        wait.until(lambda d: css("#overlay img") and "Image score" in d.find_element("id", "score").text)
        assert css("#heatmap img")
        # the Runs tab: a run's headline metrics, grids and report
        driver.find_element("xpath", "//button[@role='tab'][contains(., 'Runs')]").click()
        wait.until(lambda d: css("#run-path textarea, #run-path input") and css("#open-run")[0].is_displayed())
        box = css("#run-path textarea, #run-path input")[0]
        box.clear()
        box.send_keys(str(tiny_run))
        css("#open-run")[0].click()
        wait.until(lambda d: "app-run" in d.find_element("id", "run-headline").text
                   and "report" in d.find_element("id", "run-report").text)
        assert "adherence" in driver.find_element("id", "run-headline").text and css("#run-grids img")
        shot = tmp_path / "app.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
    finally:
        driver.quit()
        app.close()
