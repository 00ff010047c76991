"""Report section of mask-conditioned generation: mask adherence and localisation TSTR."""

from __future__ import annotations

import synthmed.report.svg as svg
from synthmed.report.html import img_tag, png_uri, table, with_ci
from synthmed.report.rundata import RunData

_ADHERENCE = ("dice", "iou", "pixel_auroc", "centre_inside", "healthy_clean")
_TSTR = ("pixel_auroc", "pixel_dice", "image_auroc")


def _cells(metrics: dict, keys: tuple[str, ...]) -> list:
    return [with_ci(metrics[k].value, metrics[k].ci95) if k in metrics else with_ci(None, None) for k in keys]


def _overlays(fake: str | None, n: int) -> str:
    """Up to ``n`` generated lesion images with their requested mask outlined."""
    from synthmed.data.dataset import ImageDataset, is_dataset
    from synthmed.viz import overlay_outline

    if not fake or not is_dataset(fake):
        return ""
    ds = ImageDataset(fake)
    rows = [r for r in ds.records if r.mask_file_name][: 4 * n]
    shown = [r for r in rows if ds.mask(r).any()][:n]
    tiles = [img_tag(png_uri(overlay_outline(ds.image(r), ds.mask(r))), r.text or r.file_name) for r in shown]
    return f"<p>{' '.join(str(t) for t in tiles)}</p>" if tiles else ""


def mask_conditioning(run: RunData, max_images: int = 6) -> list[str]:
    out: list[str] = []
    for s in run.done("evaluate.mask-adherence"):
        res = s.result()
        if res is None:
            continue
        rows = [["generated", "all", *_cells(res.metrics, _ADHERENCE)]]
        rows += [["generated", g, *_cells(m, _ADHERENCE)] for g, m in res.groups.items()]
        if res.reference:
            rows.append([f"real {res.real_split}", "all", *_cells(res.reference, _ADHERENCE)])
            rows += [[f"real {res.real_split}", g, *_cells(m, _ADHERENCE)] for g, m in res.reference_groups.items()]
        out.append(table(["images", "group", "Dice", "IoU", "pixel AUROC", "centre inside", "healthy clean"], rows,
                         caption=f"{s.name}: {res.n} images ({res.n_lesion} with a lesion), read by {res.reader} "
                                 f"at threshold {res.threshold:.2f}; bootstrap / Wilson 95 %"))
        out.append(_overlays(res.fake, max_images))
    for s in run.done("evaluate.localization-tstr"):
        res = s.result()
        if res is None or not res.conditions:
            continue
        series = {name: [(m[k].value, m[k].ci95) for k in _TSTR] for name, m in res.conditions.items()}
        out.append(svg.grouped_bars(list(_TSTR), series, title=f"{s.name}: segmenters tested on real patients",
                                    ylabel="score", ymax=1.0))
        rows = [[name, res.training_pairs.get(name, {}).get("real", 0),
                 res.training_pairs.get(name, {}).get("synthetic", 0), *_cells(m, _TSTR)]
                for name, m in res.conditions.items()]
        out.append(table(["condition", "real pairs", "synthetic pairs", *_TSTR], rows,
                         caption=f"test: {res.n_test} images, {res.n_test_patients} patients, {res.steps} steps per "
                                 "model; patient-level bootstrap"))
        if res.comparisons:
            out.append(table(["comparison", *_TSTR], [[k, *_cells(m, _TSTR)] for k, m in res.comparisons.items()]))
    return out
