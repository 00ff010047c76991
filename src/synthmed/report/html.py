"""The HTML page of the report: inline CSS, a table of contents, sections; nothing loaded from the network."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

CSS = """
:root { --ink:#1b1f24; --muted:#5f6b73; --line:#d8dde2; --accent:#2f6db5; --bg:#fbfcfd; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); background: var(--bg);
       margin: 0; }
header { background: #12324f; color: #fff; padding: 18px 28px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; color: #cfe0f0; max-width: 980px; }
nav { position: sticky; top: 0; background: #fff; border-bottom: 1px solid var(--line); padding: 6px 28px; z-index: 2;
      font-size: 13px; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; white-space: nowrap; }
main { padding: 8px 28px 40px; max-width: 1280px; }
section { border-bottom: 1px solid var(--line); padding: 10px 0 18px; }
h2 { font-size: 19px; margin: 14px 0 8px; }
h3 { font-size: 15px; margin: 14px 0 6px; }
p.note, .muted { color: var(--muted); font-size: 12.5px; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #eef2f6; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 8px 0 12px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; min-width: 170px; }
.card .v { font-size: 20px; font-weight: 650; }
.card .k { color: var(--muted); font-size: 12px; }
.plots { display: flex; flex-wrap: wrap; gap: 14px; align-items: flex-start; }
svg.chart { background: #fff; border: 1px solid var(--line); border-radius: 4px; }
.grid { border-collapse: separate; border-spacing: 3px; }
.grid td, .grid th { border: none; padding: 0; text-align: center; }
.grid th.row { text-align: right; padding-right: 8px; font-weight: 500; white-space: nowrap; background: none; }
.grid th.side { background: none; color: var(--muted); font-weight: 600; }
.grid img { display: block; image-rendering: pixelated; border-radius: 2px; }
.grid td.sep { width: 14px; }
figure { display: inline-block; margin: 4px 10px 8px 0; vertical-align: top; }
figcaption { font-size: 12px; color: var(--muted); max-width: 360px; }
img.thumb { image-rendering: pixelated; border: 1px solid var(--line); }
img.big { width: 160px; height: auto; margin-right: 4px; }
.explain { display: flex; gap: 16px; align-items: flex-start; border-top: 1px solid var(--line); padding-top: 6px; }
.explain p { margin: 2px 0 6px; max-width: 760px; }
pre { background: #f3f5f7; border: 1px solid var(--line); padding: 8px; overflow-x: auto; font-size: 12px; }
details summary { cursor: pointer; color: var(--accent); }
.status-ran, .status-resumed { color: #2a7a43; }
.status-skipped { color: var(--muted); }
.status-failed { color: #b23b3b; }
"""


class Html(str):
    """Markup built by this module's helpers from escaped parts.

    :func:`table` and :func:`cards` put an ``Html`` value into the page as it is and escape
    every other string, so text from a run (stage names, file names, captions, errors) can never
    become live markup, whatever it starts with.
    """


def trusted(markup: str) -> Html:
    """Mark ``markup``, assembled by the caller from escaped parts and fixed tags, as HTML."""
    return Html(markup)


def text(value: Any) -> Html:
    """``value`` as escaped text."""
    return Html(escape(str(value)))


#: The page runs no script and loads nothing: styles are inline, images are data: URIs.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


@dataclass
class Section:
    """One report section (``id`` is its anchor; ``html`` its body)."""

    id: str
    title: str
    html: str


@dataclass
class Page:
    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)

    def add(self, id: str, title: str, parts: Sequence[str]) -> None:
        body = "".join(p for p in parts if p)
        if body:
            self.sections.append(Section(id, title, body))

    def render(self) -> str:
        nav = "".join(f'<a href="#{s.id}">{escape(s.title)}</a>' for s in self.sections)
        body = "".join(f'<section id="{s.id}"><h2>{escape(s.title)}</h2>{s.html}</section>' for s in self.sections)
        return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
                f"<title>{escape(self.title)}</title><style>{CSS}</style></head><body>"
                f"<header><h1>{escape(self.title)}</h1><p>{escape(self.subtitle)}</p></header>"
                f"<nav>{nav}</nav><main>{body}</main></body></html>\n")


# -- formatting -------------------------------------------------------------------------------------
def fmt(value: Any, digits: int = 3) -> Html:
    """A number for a table cell (— for missing or NaN); anything else as escaped text."""
    if value is None:
        return Html("—")
    if isinstance(value, bool):
        return Html("yes" if value else "no")
    if isinstance(value, int):
        return Html(f"{value:,}")
    if isinstance(value, float):
        if not math.isfinite(value):
            return Html("—")
        return Html(f"{value:.{digits}g}" if abs(value) >= 1000 or abs(value) < 0.001 and value != 0 else
                    f"{value:.{digits}f}".rstrip("0").rstrip(".") if abs(value) >= 10 else f"{value:.{digits}f}")
    return text(value)


class Interval(Html):
    """A value with its interval (right-aligned in a table)."""


def with_ci(value: Any, ci: Sequence[float] | None, digits: int = 3) -> Html:
    """``value [low, high]``."""
    if ci is None or len(ci) != 2 or value is None:
        return fmt(value, digits)
    return Interval(f"{fmt(value, digits)} <span class=\"muted\">[{fmt(ci[0], digits)}, {fmt(ci[1], digits)}]</span>")


def _cell(c: Any) -> str:
    if isinstance(c, Interval) or isinstance(c, int | float) and not isinstance(c, bool):
        return f'<td class="num">{fmt(c) if not isinstance(c, Html) else c}</td>'
    return f"<td>{c if isinstance(c, Html) else fmt(c)}</td>"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, caption: str = "") -> Html:
    """An HTML table: :class:`Html` cells as they are, numbers formatted, everything else escaped."""
    if not rows:
        return Html("")
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    out = [f"<table>{f'<caption class=muted>{escape(caption)}</caption>' if caption else ''}<tr>{head}</tr>"]
    out += ["<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows]
    return Html("".join(out) + "</table>")


def cards(items: Sequence[tuple[str, Any]]) -> Html:
    """Headline numbers as cards: (label, value); a value that is not :class:`Html` is escaped."""
    if not items:
        return Html("")
    body = "".join(f'<div class="card"><div class="v">{v if isinstance(v, Html) else fmt(v)}</div>'
                   f'<div class="k">{escape(k)}</div></div>' for k, v in items)
    return Html(f'<div class="cards">{body}</div>')


# -- images -----------------------------------------------------------------------------------------
def png_uri(image: np.ndarray | Path | str, max_side: int = 128) -> str:
    """A ``data:image/png;base64`` URI of an image (array in any range/depth, or a file), at most ``max_side`` px."""
    from PIL import Image

    if isinstance(image, str | Path):
        img = Image.open(image)
        img.load()
        if img.mode not in ("L", "RGB", "RGBA"):
            arr = np.asarray(img).astype(np.float64)
            img = _to_pil(arr)
    else:
        img = _to_pil(np.asarray(image))
    if max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _to_pil(arr: np.ndarray):
    from PIL import Image

    a = np.asarray(arr, dtype=np.float64)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):  # channel-first
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    if hi > 1.0 or lo < 0.0:
        a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    u8 = np.clip(np.round(a * 255), 0, 255).astype(np.uint8)
    return Image.fromarray(u8, mode="L" if u8.ndim == 2 else "RGB")


def display_width(path: Path | str, target: int = 384) -> int:
    """A width to show an image file at: small images enlarged by a whole factor (at most 4x), up to ``target``."""
    from PIL import Image

    with Image.open(path) as img:
        w, h = img.size
    return w * max(1, min(4, target // max(w, h, 1))) if max(w, h) < target else round(w * target / max(w, h))


def img_tag(uri: str, alt: str, size: int | None = None, cls: str = "thumb") -> Html:
    dim = f' width="{int(size)}" height="{int(size)}"' if size else ""
    return Html(f'<img class="{escape(cls)}" src="{escape(uri)}" alt="{escape(alt)}" title="{escape(alt)}"{dim}>')
