"""Charts for the comparison report: inline SVG line and bar charts with labelled axes, and
numbers formatted for people (plain digits with units, never 1.23e+03). Pure functions of their
arguments; `figures.py` decides what to draw."""

from __future__ import annotations

import html
import math
from typing import Optional

from heavylab.analysis.fmt import fmt_num

Number = Optional[float]


def _ticks(vmax: float, n: int = 5) -> list[float]:
    """Round tick values from 0 covering vmax, about n steps of 1, 2, 2.5 or 5 x 10^k."""
    if vmax <= 0:
        return [0.0, 1.0]
    raw = vmax / n
    exp = 10 ** math.floor(math.log10(raw))
    step = next(m * exp for m in (1, 2, 2.5, 5, 10) if raw <= m * exp)
    count = max(1, math.ceil(vmax / step - 1e-9))
    return [round(step * i, 10) for i in range(count + 1)]


# One color per side (Okabe-Ito, told apart by colour-blind readers too), in the order given.
SIDE_COLORS = ("#1f5fa8", "#d9661f", "#009e73", "#cc79a7", "#56b4e9", "#e69f00", "#000000", "#999933")
DASHES = {"p50": "2,3", "p95": "7,4", "p99": "", "queue": "7,4", "service": "", "one": ""}


def svg_lines(
    title: str,
    y_label: str,
    series: list[tuple[str, str, str, list]],
    x_max: float,
    stages: list[tuple[float, str]],
    *,
    x_label: str = "time since the start of the scenario (s)",
    y_max: float | None = None,
    hlines: list[tuple[float, str]] = (),  # type: ignore[assignment]
    bands: list[tuple[float, float, str]] = (),  # type: ignore[assignment]
    points: list[tuple[float, float, str, bool, str]] = (),  # type: ignore[assignment]
) -> str:
    """A line chart: series of (name, color, dash, [(x, y)]), labelled axes, vertical stage marks;
    optionally horizontal lines (y, label) such as an SLO, shaded x-bands (x0, x1, label) such as a
    bracket, and points (x, y, color, filled, tooltip) such as steps, hollow when not filled. A
    y_max caps the axis: values above it are drawn on the top edge."""
    width = 900
    left, right, top = 72, 20, 34
    # The legend below the axis title, wrapped into rows that fit the width.
    legend, lx, row = [], left, 0
    for name, color, dash, _pts in series:
        w = 44 + 7 * len(name)
        if lx + w > width - right and lx > left:
            lx, row = left, row + 1
        legend.append((lx, row, name, color, dash))
        lx += w
    bottom = 56 + 18 * (row + 1)
    height = 226 + bottom
    pw, ph = width - left - right, height - top - bottom
    ys = [y for _, _, _, pts in series for _, y in pts if y is not None]
    ys += [y for y, _ in hlines] + [p[1] for p in points if p[1] is not None]
    top_y = max(ys) if ys else 1.0
    yt = _ticks(min(top_y, y_max) if y_max else top_y)
    ymax = yt[-1] or 1.0
    xmax = x_max if x_max > 0 else 1.0
    xt = _ticks(xmax, 6)
    e = html.escape
    sx = lambda x: left + pw * min(x, xt[-1]) / xt[-1]  # noqa: E731
    sy = lambda y: top + ph - ph * min(y, ymax) / ymax  # noqa: E731
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{e(title)}" '
        'class="line-chart">',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="15" '
        f'font-weight="bold">{e(title)}</text>',
    ]
    for v in yt:
        y = sy(v)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{fmt_num(v)}</text>'
        )
    for v in xt:
        x = sx(v)
        parts.append(f'<line x1="{x:.1f}" y1="{top + ph}" x2="{x:.1f}" y2="{top + ph + 4}" stroke="#333"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{top + ph + 17}" text-anchor="middle" font-size="11">{fmt_num(v)}</text>'
        )
    for x, name in stages:
        if 0 < x < xt[-1]:
            parts.append(
                f'<line x1="{sx(x):.1f}" y1="{top}" x2="{sx(x):.1f}" y2="{top + ph}" '
                f'stroke="#999" stroke-dasharray="2,4"><title>{e(name)}</title></line>'
            )
    for x0, x1, name in bands:
        a, b = sx(max(0.0, x0)), sx(x1)
        parts.append(
            f'<rect x="{a:.1f}" y="{top}" width="{max(1.0, b - a):.1f}" height="{ph}" fill="#f2c94c" '
            f'fill-opacity="0.35"><title>{e(name)}</title></rect>'
        )
        parts.append(
            f'<text x="{(a + b) / 2:.1f}" y="{top + 12}" text-anchor="middle" font-size="11">{e(name)}</text>'
        )
    for y, name in hlines:
        parts.append(
            f'<line x1="{left}" y1="{sy(y):.1f}" x2="{left + pw}" y2="{sy(y):.1f}" stroke="#b00020" '
            f'stroke-dasharray="6,3"><title>{e(name)}</title></line>'
        )
        parts.append(
            f'<text x="{left + pw - 4}" y="{sy(y) - 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#b00020">{e(name)}</text>'
        )
    parts.append(
        f'<text x="{left + pw / 2}" y="{top + ph + 34}" text-anchor="middle" '
        f'font-size="12">{e(x_label)}</text>'
    )
    parts.append(
        f'<text x="16" y="{top + ph / 2}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 16 {top + ph / 2})">{e(y_label)}</text>'
    )
    parts.append(f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#333"/>')
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="#333"/>')
    for name, color, dash, pts in series:
        pts = [(x, y) for x, y in pts if y is not None]
        if not pts:
            continue
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        if len(pts) == 1:
            x, y = pts[0]
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}"/>')
        else:
            coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
            parts.append(
                f'<polyline points="{coords}" fill="none" stroke="{color}" '
                f'stroke-width="2"{dash_attr}><title>{e(name)}</title></polyline>'
            )
    for x, y, color, filled, tip in points:
        if y is None:
            continue
        fill = color if filled else "#fff"
        parts.append(
            f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4" fill="{fill}" stroke="{color}" '
            f'stroke-width="2"><title>{e(tip)}</title></circle>'
        )
    for lx, row, name, color, dash in legend:
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        y = top + ph + 52 + 18 * row
        parts.append(
            f'<line x1="{lx}" y1="{y}" x2="{lx + 26}" y2="{y}" stroke="{color}" stroke-width="2"{dash_attr}/>'
        )
        parts.append(f'<text x="{lx + 31}" y="{y + 4}" font-size="12">{e(name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * exp:
            return m * exp
    return 10 * exp


def svg_bars(title: str, categories: list[str], series: list[tuple[str, list[Number]]], unit: str) -> str:
    """A grouped bar chart: one group per category, one bar per series."""
    # Wide enough for every bar's value label: about 34 px per bar.
    width, height = max(480, 100 + 34 * len(categories) * len(series)), 280
    left, right, top, bottom = 64, 16, 40, 56
    plot_w, plot_h = width - left - right, height - top - bottom
    vals = [v for _, vs in series for v in vs if v is not None]
    vmax = _nice_max(max(vals) if vals else 1.0)
    e = html.escape
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{e(title)}">',
        f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15" '
        f'font-weight="bold">{e(title)}</text>',
    ]
    for i in range(5):
        val = vmax * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{fmt_num(val)}</text>'
        )
    parts.append(
        f'<text x="14" y="{top + plot_h / 2}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + plot_h / 2})">{e(unit)}</text>'
    )
    group_w = plot_w / max(1, len(categories))
    bar_w = min(group_w * 0.7 / max(1, len(series)), 90.0)
    for ci, cat in enumerate(categories):
        gx = left + ci * group_w + (group_w - bar_w * len(series)) / 2
        for si, (name, vs) in enumerate(series):
            v = vs[ci]
            x = gx + si * bar_w
            color = SIDE_COLORS[si % len(SIDE_COLORS)]
            if v is None:
                parts.append(
                    f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h - 4}" '
                    f'text-anchor="middle" font-size="10">n/a</text>'
                )
                continue
            h = plot_h * min(v, vmax) / vmax
            y = top + plot_h - h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" height="{h:.1f}" '
                f'fill="{color}"><title>{e(name)} {e(cat)}: {v:.2f} {e(unit)}</title>'
                "</rect>"
            )
            parts.append(
                f'<text x="{x + (bar_w - 2) / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle" '
                f'font-size="10">{fmt_num(v)}</text>'
            )
        parts.append(
            f'<text x="{left + ci * group_w + group_w / 2:.1f}" y="{top + plot_h + 16}" '
            f'text-anchor="middle" font-size="12">{e(cat)}</text>'
        )
    lx = left
    for si, (name, _) in enumerate(series):
        parts.append(
            f'<rect x="{lx}" y="{height - 22}" width="12" height="12" '
            f'fill="{SIDE_COLORS[si % len(SIDE_COLORS)]}"/>'
        )
        parts.append(f'<text x="{lx + 16}" y="{height - 12}" font-size="12">{e(name)}</text>')
        lx += 24 + 8 * len(name)
    parts.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#333"/>'
    )
    parts.append("</svg>")
    return "\n".join(parts)
