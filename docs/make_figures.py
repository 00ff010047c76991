"""Regenerate the figures of the docs: python docs/make_figures.py"""

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


if __name__ == "__main__":
    phantom_grid()
