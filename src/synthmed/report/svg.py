"""Small hand-written SVG charts for the HTML report (no plotting library needed).

Every function returns one ``<svg>`` element as a string, sized in CSS pixels, with a
``<title>`` for screen readers; values are drawn as given (the caller formats and orders them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

PALETTE = ("#2f6db5", "#d9822b", "#3a9a5b", "#b23b3b", "#7a4fb5", "#5f6b73")
_FONT = 'font-family="system-ui, sans-serif" font-size="11"'
_CHAR_PX = 6.5  # rough width of one character of _FONT


def _fmt(v: float) -> str:
    if v == 0 or not math.isfinite(v):
        return "0" if v == 0 else "–"
    a = abs(v)
    return f"{v:.3g}" if a < 1000 else f"{v:,.0f}"


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    out, t = [], start
    while t <= hi + 1e-9 * step:
        out.append(round(t, 10))
        t += step
    return out


def _log_ticks(lo: float, hi: float) -> list[float]:
    """log10 positions of round values between 10**lo and 10**hi (linear round values within a decade)."""
    if hi - lo < 1:
        values = _ticks(10**lo, 10**hi)
    else:
        values = [m * 10.0**e for e in range(math.floor(lo), math.ceil(hi) + 1)
                  for m in ((1, 2, 5) if hi - lo < 3 else (1,))]
    return [math.log10(v) for v in values if v > 0 and lo <= math.log10(v) <= hi]


def _frame(width: int, height: int, title: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img"><title>{escape(title)}</title>'
        f'<text x="{width / 2}" y="16" text-anchor="middle" {_FONT} font-weight="600">{escape(title)}</text>'
        + "".join(body)
        + "</svg>"
    )


def _axes(x0: float, y0: float, x1: float, y1: float, ticks: list[float], scale, label: str,
          tick_label=None) -> list[str]:
    """A y axis with gridlines at ``ticks`` (``scale`` maps a value to a y pixel) and a rotated label.

    ``tick_label`` formats a tick (default: the value itself; a log axis shows ``10**tick``).
    """
    tick_label = tick_label or _fmt
    out = [
        f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#444"/>',
        f'<line x1="{x0}" y1="{y1}" x2="{x1}" y2="{y1}" stroke="#444"/>',
    ]
    for t in ticks:
        y = scale(t)
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end" {_FONT}>{tick_label(t)}</text>')
    if label:
        out.append(
            f'<text transform="translate(12 {(y0 + y1) / 2}) rotate(-90)" text-anchor="middle" '
            f"{_FONT}>{escape(label)}</text>"
        )
    return out


def bar_chart(
    items: Sequence[tuple[str, float, tuple[float, float] | None]],
    *,
    title: str,
    ylabel: str = "",
    ymax: float | None = None,
    width: int = 520,
    height: int = 260,
    reference: float | None = None,
    reference_label: str = "",
) -> str:
    """Vertical bars with optional confidence-interval whiskers.

    Args:
        items: (label, value, (low, high) or None) per bar.
        ymax: Top of the axis (default: the largest value or CI bound).
        reference: A horizontal dashed line (e.g. chance level, or the real-vs-real floor).
    """
    tops = [v for _, v, _ in items] + [ci[1] for _, _, ci in items if ci] + ([reference] if reference else [])
    top = ymax if ymax is not None else max([t for t in tops if math.isfinite(t)] + [1e-9]) * 1.08
    x0, y0, x1, y1 = 56, 28, width - 10, height - 58
    ticks = _ticks(0, top)
    top = max(top, ticks[-1])

    def sy(v: float) -> float:
        return y1 - (y1 - y0) * max(0.0, min(v, top)) / top

    body = _axes(x0, y0, x1, y1, ticks, sy, ylabel)
    slot = (x1 - x0) / max(len(items), 1)
    for i, (label, value, ci) in enumerate(items):
        cx = x0 + slot * (i + 0.5)
        w = min(slot * 0.6, 48)
        if math.isfinite(value):
            body.append(
                f'<rect x="{cx - w / 2:.1f}" y="{sy(value):.1f}" width="{w:.1f}" '
                f'height="{y1 - sy(value):.1f}" fill="{PALETTE[i % len(PALETTE)]}"><title>{escape(label)}: '
                f"{_fmt(value)}</title></rect>"
            )
        if ci:
            body.append(
                f'<path d="M{cx:.1f} {sy(ci[0]):.1f}V{sy(ci[1]):.1f}M{cx - 5:.1f} {sy(ci[0]):.1f}h10'
                f'M{cx - 5:.1f} {sy(ci[1]):.1f}h10" stroke="#111" fill="none"/>'
            )
        body.append(f'<text transform="translate({cx:.1f} {y1 + 10}) rotate(30)" {_FONT}>{escape(label)}</text>')
    if reference is not None and math.isfinite(reference):
        y = sy(reference)
        body.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#b23b3b" stroke-dasharray="5 3"/>')
        body.append(
            f'<text x="{x1}" y="{y - 3:.1f}" text-anchor="end" {_FONT} fill="#b23b3b">{escape(reference_label)}</text>'
        )
    return _frame(width, height, title, body)


def grouped_bars(
    groups: Sequence[str],
    series: dict[str, Sequence[tuple[float, tuple[float, float] | None]]],
    *,
    title: str,
    ylabel: str = "",
    ymax: float | None = None,
    width: int = 560,
    height: int = 280,
) -> str:
    """Bars grouped by ``groups`` (x), one colour per ``series`` name, with CI whiskers and a legend."""
    values = [v for s in series.values() for v, ci in s] + [ci[1] for s in series.values() for _, ci in s if ci]
    top = ymax if ymax is not None else max([v for v in values if math.isfinite(v)] + [1e-9]) * 1.08
    longest = max([len(g) for g in groups] + [1])
    rotate = longest * _CHAR_PX > (width - 66) / max(len(groups), 1)  # labels would overlap side by side
    if rotate:
        height += int(longest * _CHAR_PX * 0.5)
    x0, y0, x1, y1 = 56, 40, width - 10, height - (int(longest * _CHAR_PX * 0.5) + 30 if rotate else 40)
    ticks = _ticks(0, top)
    top = max(top, ticks[-1])

    def sy(v: float) -> float:
        return y1 - (y1 - y0) * max(0.0, min(v, top)) / top

    body = _axes(x0, y0, x1, y1, ticks, sy, ylabel)
    names = list(series)
    slot = (x1 - x0) / max(len(groups), 1)
    w = min(slot * 0.8 / max(len(names), 1), 40)
    for g, group in enumerate(groups):
        gx = x0 + slot * (g + 0.5) - w * len(names) / 2
        for k, name in enumerate(names):
            value, ci = series[name][g]
            x = gx + k * w
            colour = PALETTE[k % len(PALETTE)]
            if math.isfinite(value):
                body.append(
                    f'<rect x="{x:.1f}" y="{sy(value):.1f}" width="{w - 2:.1f}" height="{y1 - sy(value):.1f}" '
                    f'fill="{colour}"><title>{escape(name)} {escape(group)}: {_fmt(value)}</title></rect>'
                )
            if ci:
                cx = x + (w - 2) / 2
                body.append(f'<path d="M{cx:.1f} {sy(ci[0]):.1f}V{sy(ci[1]):.1f}" stroke="#111"/>')
        gx = x0 + slot * (g + 0.5)
        if rotate:
            body.append(f'<text transform="translate({gx:.1f} {y1 + 12}) rotate(30)" {_FONT}>{escape(group)}</text>')
        else:
            body.append(f'<text x="{gx:.1f}" y="{y1 + 16}" text-anchor="middle" {_FONT}>{escape(group)}</text>')
    lx = x0 + 8
    for k, name in enumerate(names):
        body.append(
            f'<rect x="{lx}" y="24" width="10" height="10" fill="{PALETTE[k % len(PALETTE)]}"/>'
            f'<text x="{lx + 14}" y="33" {_FONT}>{escape(name)}</text>'
        )
        lx += 30 + 6.5 * len(name)
    return _frame(width, height, title, body)


def line_chart(
    series: dict[str, Sequence[tuple[float, float]]],
    *,
    title: str,
    xlabel: str = "",
    ylabel: str = "",
    width: int = 560,
    height: int = 260,
    logy: bool = False,
) -> str:
    """One polyline per series (points sorted by x), with a legend; ``logy`` for losses over orders of magnitude."""
    pts = [(x, y) for s in series.values() for x, y in s if math.isfinite(y) and (y > 0 or not logy)]
    if not pts:
        return _frame(width, 40, title + " (no data)", [])
    tr = (lambda v: math.log10(v)) if logy else (lambda v: v)  # noqa: E731
    xs, ys = [p[0] for p in pts], [tr(p[1]) for p in pts]
    xlo, xhi = (min(xs), max(xs)) if max(xs) > min(xs) else (min(xs) - 1, min(xs) + 1)  # one x: centred
    if max(ys) > min(ys):
        pad = (max(ys) - min(ys)) * 0.05
        ylo, yhi = min(ys) - pad, max(ys) + pad
    else:  # one value: centred in a range of a decade (log) or of the value's size
        half = 0.5 if logy else max(abs(ys[0]) * 0.5, 0.5)
        ylo, yhi = ys[0] - half, ys[0] + half
    x0, y0, x1, y1 = 60, 40, width - 12, height - 38

    def sx(v: float) -> float:
        return x0 + (x1 - x0) * (v - xlo) / (xhi - xlo)

    def sy(v: float) -> float:
        return y1 - (y1 - y0) * (v - ylo) / (yhi - ylo)

    ticks = _log_ticks(ylo, yhi) if logy else [t for t in _ticks(ylo, yhi) if ylo <= t <= yhi]
    body = _axes(x0, y0, x1, y1, ticks, sy, ylabel + (" (log scale)" if logy else ""),
                 tick_label=(lambda t: _fmt(10**t)) if logy else _fmt)
    whole = all(float(x).is_integer() for x in xs)  # epochs, steps: no tick between two of them
    for t in _ticks(xlo, xhi):
        if xlo <= t <= xhi and (not whole or float(t).is_integer()):
            body.append(f'<text x="{sx(t):.1f}" y="{y1 + 14}" text-anchor="middle" {_FONT}>{_fmt(t)}</text>')
    body.append(f'<text x="{(x0 + x1) / 2}" y="{height - 6}" text-anchor="middle" {_FONT}>{escape(xlabel)}</text>')
    for k, (name, s) in enumerate(series.items()):
        colour = PALETTE[k % len(PALETTE)]
        good = sorted((x, tr(y)) for x, y in s if math.isfinite(y) and (y > 0 or not logy))
        if not good:
            continue
        path = " ".join(f"{'M' if i == 0 else 'L'}{sx(x):.1f} {sy(y):.1f}" for i, (x, y) in enumerate(good))
        body.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
        if len(good) <= 30:
            body += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{colour}"/>' for x, y in good]
        lx = x0 + 8 + k * 130
        body.append(
            f'<rect x="{lx}" y="24" width="10" height="3" fill="{colour}"/>'
            f'<text x="{lx + 14}" y="29" {_FONT}>{escape(name)}</text>'
        )
    return _frame(width, height, title, body)


def heatmap(
    matrix: Sequence[Sequence[float]],
    rows: Sequence[str],
    cols: Sequence[str],
    *,
    title: str,
    row_label: str = "requested",
    col_label: str = "judged",
    cell: int = 34,
) -> str:
    """A confusion matrix: counts in cells, shaded by their share of the row."""
    lab = max([len(r) for r in rows] + [len(row_label) + 2]) * 6 + 16  # room for the rows' title too
    top = max([len(c) for c in cols] + [4]) * 5 + 40
    width, height = lab + cell * len(cols) + 16, top + cell * len(rows) + 24
    body = [
        f'<text x="{lab + cell * len(cols) / 2}" y="{height - 6}" text-anchor="middle" {_FONT}>'
        f"{escape(col_label)} →</text>",
        f'<text x="4" y="{top - 6}" {_FONT}>{escape(row_label)} ↓</text>',
    ]
    for j, c in enumerate(cols):
        x = lab + cell * (j + 0.5)
        body.append(f'<text transform="translate({x:.1f} {top - 4}) rotate(-45)" {_FONT}>{escape(c)}</text>')
    for i, r in enumerate(rows):
        total = sum(matrix[i]) or 1
        y = top + cell * i
        body.append(f'<text x="{lab - 4}" y="{y + cell / 2 + 4:.1f}" text-anchor="end" {_FONT}>{escape(r)}</text>')
        for j, _ in enumerate(cols):
            v = matrix[i][j]
            share = v / total
            shade = int(255 - 190 * share)
            colour = f"rgb({shade},{shade + int(20 * share)},255)"
            ink = "#fff" if share > 0.6 else "#111"
            body.append(
                f'<rect x="{lab + cell * j}" y="{y}" width="{cell - 1}" height="{cell - 1}" fill="{colour}"/>'
                f'<text x="{lab + cell * (j + 0.5):.1f}" y="{y + cell / 2 + 4:.1f}" text-anchor="middle" '
                f'fill="{ink}" {_FONT}>{_fmt(v)}</text>'
            )
    return _frame(width, height, title, body)


def scatter(
    points: Sequence[tuple[str, float, float]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    lim: tuple[float, float] = (0.0, 1.0),
    width: int = 320,
    height: int = 300,
) -> str:
    """Labelled points on a square [lim] x [lim] plane (precision vs recall)."""
    x0, y0, x1, y1 = 50, 28, width - 14, height - 40
    lo, hi = lim

    def sx(v: float) -> float:
        return x0 + (x1 - x0) * (v - lo) / (hi - lo)

    def sy(v: float) -> float:
        return y1 - (y1 - y0) * (v - lo) / (hi - lo)

    ticks = _ticks(lo, hi)
    body = _axes(x0, y0, x1, y1, [t for t in ticks if lo <= t <= hi], sy, ylabel)
    for t in ticks:
        if lo <= t <= hi:
            body.append(f'<text x="{sx(t):.1f}" y="{y1 + 14}" text-anchor="middle" {_FONT}>{_fmt(t)}</text>')
    body.append(f'<text x="{(x0 + x1) / 2}" y="{height - 6}" text-anchor="middle" {_FONT}>{escape(xlabel)}</text>')
    for k, (label, x, y) in enumerate(points):
        if not (math.isfinite(x) and math.isfinite(y)):
            continue
        colour = PALETTE[k % len(PALETTE)]
        body.append(
            f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="5" fill="{colour}"><title>{escape(label)}: '
            f"({_fmt(x)}, {_fmt(y)})</title></circle>"
            f'<text x="{sx(x) + 7:.1f}" y="{sy(y) + 4:.1f}" {_FONT}>{escape(label)}</text>'
        )
    return _frame(width, height, title, body)
