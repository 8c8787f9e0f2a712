"""Charts drawn on the server as inline SVG: they need no script and no outside file, and a
strict Content-Security-Policy allows them (presentation attributes, no inline style).
Every value is escaped; each chart names itself for screen readers, and the pages show the
same numbers in a table beside it."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 150, 16, 40  # room for the y ticks, the legend, the x label
SERIES_STYLES = 6  # style.css colours .s0 .. .s5


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[tuple[float, float]]  # (x, y)


def _ticks(top: float, count: int = 4) -> list[float]:
    """Round steps (1, 2, 2.5 or 5 times a power of ten) from 0 to at least `top`."""
    raw = top / count if top > 0 else 0.25
    power = 10 ** math.floor(math.log10(raw))
    step = next(power * f for f in (1, 2, 2.5, 5, 10) if power * f >= raw)
    return [step * i for i in range(math.ceil(top / step - 1e-9) + 1 if top > 0 else 2)]


def _number(value: float) -> str:
    return f"{value:.3g}"


def line_chart(series: Sequence[Series], title: str, x_label: str, y_label: str,
               cap: float | None = None, cap_label: str = "cap") -> Markup:
    """Lines of y over x (from 0), one per series, with a dashed line at `cap`."""
    xs = [x for s in series for x, _ in s.points] or [1.0]
    ys = [y for s in series for _, y in s.points] + ([cap] if cap is not None else [])
    x_top, y_ticks = max(max(xs), 1.0), _ticks(max(ys, default=1.0))
    y_top = y_ticks[-1] or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + plot_w * x / x_top

    def py(y: float) -> float:
        return TOP + plot_h * (1 - y / y_top)

    parts = [_open(title, f"{y_label} by {x_label}")]
    for tick in y_ticks:
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{py(tick):.1f}" '
                     f'y2="{py(tick):.1f}"/><text x="{LEFT - 6}" y="{py(tick) + 4:.1f}" '
                     f'text-anchor="end">{_number(tick)}</text>')
    parts.append(f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + plot_h}"/>'
                 f'<line class="axis" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{TOP + plot_h}" '
                 f'y2="{TOP + plot_h}"/>')
    for x in sorted({round(x) for x in xs} | {0})[:: max(1, len(set(xs)) // 10 + 1)]:
        parts.append(f'<text x="{px(x):.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">'
                     f'{_number(x)}</text>')
    parts.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 4}" text-anchor="middle">'
                 f'{escape(x_label)}</text>')
    if cap is not None:
        # labelled inside the plot, above its line: the legend's column stays clear
        parts.append(f'<line class="cap" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{py(cap):.1f}" '
                     f'y2="{py(cap):.1f}"/><text x="{LEFT + plot_w - 4}" y="{py(cap) - 4:.1f}" '
                     f'text-anchor="end">{escape(cap_label)} {_number(cap)}</text>')
    for i, s in enumerate(series):
        style = f"s{i % SERIES_STYLES}"
        points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in s.points)
        parts.append(f'<polyline class="{style}" points="{points}"/>')
        parts.extend(f'<circle class="{style}" cx="{px(x):.1f}" cy="{py(y):.1f}" r="3"/>'
                     for x, y in s.points)
        legend_y = TOP + 14 + 18 * i
        parts.append(f'<rect class="{style}" x="{LEFT + plot_w + 8}" y="{legend_y - 9}" '
                     f'width="10" height="10"/><text x="{LEFT + plot_w + 22}" y="{legend_y}">'
                     f'{escape(_short(s.name))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(bars: Sequence[tuple[str, float, float | None]], title: str,
              unit: str = "ε") -> Markup:
    """Horizontal bars (label, value, cap): each bar against its own cap (a dashed mark);
    a bar over its cap is drawn in the warning colour."""
    row, label_w, value_w = 30, 200, 110
    height = TOP + row * max(len(bars), 1) + 10
    top = max([max(v, c or 0.0) for _, v, c in bars] + [1e-9])
    plot_w = WIDTH - label_w - value_w
    parts = [_open(title, f"{unit} per bar against its cap", height)]
    for i, (label, value, cap) in enumerate(bars):
        y = TOP + row * i
        width = plot_w * value / top
        over = " over" if cap is not None and value > cap else ""
        parts.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">'
                     f'{escape(_short(label, 30))}</text>'
                     f'<rect class="bar s0{over}" x="{label_w}" y="{y + 3}" '
                     f'width="{width:.1f}" height="16"/>')
        if cap is not None:
            x = label_w + plot_w * cap / top
            parts.append(f'<line class="cap" x1="{x:.1f}" x2="{x:.1f}" y1="{y}" y2="{y + 22}"/>')
        of_cap = f" / {_number(cap)}" if cap is not None else ""
        parts.append(f'<text x="{label_w + plot_w + 6}" y="{y + 15}">{unit} {value:.2f}'
                     f'{of_cap}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _open(title: str, description: str, height: int = HEIGHT) -> str:
    ident = "chart-" + hashlib.sha256(f"{title}\n{description}".encode()).hexdigest()[:10]
    return (f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} '
            f'{height}" width="{WIDTH}" height="{height}" role="img" '
            f'aria-labelledby="{ident}"><title id="{ident}">{escape(title)}: '
            f'{escape(description)}</title>')


def _short(text: str, limit: int = 20) -> str:
    """Legends have a fixed room; the tables beside each chart give names whole."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
