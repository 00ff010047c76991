"""Regenerate the figures of the docs.

    python docs/make_figures.py                            # the phantom grid
    python docs/make_figures.py runs/demo docs/images/demo_real_vs_generated.png   # real vs generated
    python docs/make_figures.py --reader-study runs/demo docs/images/reader_study.png  # the reader page
    python docs/make_figures.py --app runs/demo docs/images/app_generate.png            # the app's Generate tab
    python docs/make_figures.py --masks GENERATED_DIR docs/images/controlnet_masks.png  # mask outline over images
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from PIL import Image

from synthmed.data import ImageDataset
from synthmed.data.phantom import PhantomConfig, generate_phantom
from synthmed.viz import image_grid, overlay_outline

HERE = Path(__file__).parent


def phantom_grid() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = generate_phantom(PhantomConfig(out=Path(tmp) / "ph", n=160, size=128, seed=2024), progress=False)
        ds = ImageDataset(root)
        tumour = [r for r in ds if r.findings.tumor_present]
        picks, seen = [], set()
        for r in tumour:  # one slice per patient, for variety
            if r.patient_id not in seen:
                seen.add(r.patient_id)
                picks.append(r)
        picks = picks[:12]
        healthy = [r for r in ds if not r.findings.tumor_present][:4:2]
        rows = [ds.image(r) for r in picks[:6]] + [overlay_outline(ds.image(r), ds.mask(r)) for r in picks[:6]]
        rows += [ds.image(r) for r in picks[6:12]]
        Image.fromarray(image_grid(rows, ncols=6)).save(HERE / "images" / "phantom_grid.png", optimize=True)
        lines = ["| # | ground-truth prompt |", "|---|---|"]
        for i, r in enumerate(picks[:12], 1):
            lines.append(f"| {i} | {r.text} |")
        (HERE / "images" / "phantom_grid.md").write_text("\n".join(lines) + "\n")
        del healthy


#: Finding groups of the real-vs-generated grid: (name, test on a findings object).
GROUPS = (
    ("no tumour", lambda f: not f.tumor_present),
    ("left hemisphere", lambda f: f.tumor_present and f.hemisphere == "left"),
    ("right hemisphere", lambda f: f.tumor_present and f.hemisphere == "right"),
    ("large", lambda f: f.tumor_present and f.size_category == "large"),
    ("small", lambda f: f.tumor_present and f.size_category == "small"),
)


def real_vs_generated(run: Path, out: Path, per_row: int = 6) -> None:
    """Per finding group, a row of real slices over a row of generated ones (from a demo run directory)."""
    real, fake = ImageDataset(run / "data" / "real"), ImageDataset(run / "data" / "synthetic")
    tiles = []
    for _, test in GROUPS:
        tiles += [real.image(r) for r in real.records if r.split == "test" and test(r.findings)][:per_row]
        tiles += [fake.image(r) for r in fake.records if test(r.requested_findings)][:per_row]
    Image.fromarray(image_grid(tiles, ncols=per_row)).convert("L").save(out, optimize=True)


def mask_outline_grid(generated: Path, out: Path, per_row: int = 6) -> None:
    """Mask-conditioned images: per size group, a row of generated images over the same with their mask outlined."""
    ds = ImageDataset(generated)
    tiles = []
    for size in ("small", "medium", "large"):
        rows = [r for r in ds.records if r.requested_findings and r.requested_findings.size_category == size][:per_row]
        tiles += [ds.image(r) for r in rows] + [overlay_outline(ds.image(r), ds.mask(r)) for r in rows]
    Image.fromarray(image_grid(tiles, ncols=per_row)).save(out, optimize=True)


def reader_study_page(run: Path, out: Path) -> None:
    """The reader page of a study drawn from a demo run (held-out real vs generated), half answered."""
    from synthmed.study import StudyCreateConfig, create_study
    from synthmed.testing.browser import selenium_chromium
    from synthmed.testing.study import free_port, start_server, stop

    with tempfile.TemporaryDirectory() as tmp:
        study = create_study(StudyCreateConfig(real=run / "data" / "real", fake=run / "data" / "synthetic",
                                               out=Path(tmp) / "study", real_split="test", n_real=10, n_fake=10,
                                               questions=["realism", "findings"]))
        port = free_port()
        proc, links = start_server(study, port, "--readers", "ann")
        driver = selenium_chromium(window=(1100, 640))
        try:
            from selenium.webdriver.common.action_chains import ActionChains
            from selenium.webdriver.support.ui import WebDriverWait

            driver.get(links["ann"])
            WebDriverWait(driver, 30).until(lambda d: d.find_element("id", "count").text == "1 / 20")
            ActionChains(driver).send_keys("5" + "3").perform()  # confidence and realism given; findings next
            driver.save_screenshot(str(out))
        finally:
            driver.quit()
            stop(proc)


def app_generate_tab(run: Path, out: Path) -> None:
    """The app's Generate tab on a demo run: four images of the default request, read back by the judge."""
    from selenium.webdriver.support.ui import WebDriverWait

    from synthmed.app.models import AppConfig
    from synthmed.app.ui import launch
    from synthmed.testing.browser import selenium_chromium
    from synthmed.testing.study import free_port

    app = launch(AppConfig(run=run, port=free_port()), block=False)
    driver = selenium_chromium(window=(1400, 1000))
    try:
        driver.get(app.local_url)
        WebDriverWait(driver, 60).until(lambda d: d.find_elements("css selector", "#prompt textarea"))
        driver.find_element("id", "generate-button").click()
        WebDriverWait(driver, 300).until(lambda d: len(d.find_elements("css selector", "#gallery img")) >= 4)
        driver.save_screenshot(str(out))
    finally:
        driver.quit()
        app.close()


if __name__ == "__main__":
    import sys

    if len(sys.argv) == 4 and sys.argv[1] == "--reader-study":
        reader_study_page(Path(sys.argv[2]), Path(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == "--masks":
        mask_outline_grid(Path(sys.argv[2]), Path(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == "--app":
        app_generate_tab(Path(sys.argv[2]), Path(sys.argv[3]))
    elif len(sys.argv) == 3:  # python docs/make_figures.py RUN_DIR OUT.png
        real_vs_generated(Path(sys.argv[1]), Path(sys.argv[2]))
    else:
        phantom_grid()
