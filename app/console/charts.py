"""Small server-rendered SVG charts: bars (histograms, rates) and lines (latency).

Hand-written because the console needs only two shapes and must work with no script, no build
step and no network; each chart is a few dozen elements with a `<title>` per mark for hover text.
All text is escaped; numbers are formatted here, so templates insert the result as-is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 520
HEIGHT = 170
_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 8, 10, 24
PALETTE = ("#2563eb", "#d97706", "#059669", "#db2777")


@dataclass(frozen=True, slots=True)
class Bar:
    value: float
    hover: str  # shown as the mark's tooltip, e.g. "12:00to12:10: 42 rows"


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def _frame(title: str, body: list[str], y_max: float, x_left: str, x_right: str) -> Markup:
    plot_bottom = HEIGHT - _BOTTOM
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}"'
        f' width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line class="axis" x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{plot_bottom}"/>',
        f'<line class="axis" x1="{_LEFT}" y1="{plot_bottom}" x2="{WIDTH - _RIGHT}"'
        f' y2="{plot_bottom}"/>',
        f'<text class="tick" x="{_LEFT - 4}" y="{_TOP + 8}" text-anchor="end">'
        f"{escape(_number(y_max))}</text>",
        f'<text class="tick" x="{_LEFT - 4}" y="{plot_bottom}" text-anchor="end">0</text>',
        f'<text class="tick" x="{_LEFT}" y="{HEIGHT - 6}">{escape(x_left)}</text>',
        f'<text class="tick" x="{WIDTH - _RIGHT}" y="{HEIGHT - 6}" text-anchor="end">'
        f"{escape(x_right)}</text>",
        *body,
        "</svg>",
    ]
    return Markup("".join(parts))  # noqa: S704  (every interpolated text is escaped above)


def bar_chart(bars: Sequence[Bar], *, title: str, x_left: str = "", x_right: str = "") -> Markup:
    """Vertical bars scaled to the largest value; an empty sequence draws empty axes."""
    y_max = max((b.value for b in bars), default=0.0) or 1.0
    plot_width = WIDTH - _LEFT - _RIGHT
    plot_height = HEIGHT - _TOP - _BOTTOM
    slot = plot_width / max(len(bars), 1)
    gap = min(2.0, slot / 4)
    body = []
    for index, bar in enumerate(bars):
        height = plot_height * bar.value / y_max
        x = _LEFT + index * slot + gap / 2
        y = _TOP + plot_height - height
        body.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{slot - gap:.1f}"'
            f' height="{height:.1f}"><title>{escape(bar.hover)}</title></rect>'
        )
    return _frame(title, body, y_max, x_left, x_right)


def line_chart(
    series: dict[str, Sequence[float | None]],
    *,
    title: str,
    x_left: str = "",
    x_right: str = "",
    hovers: Sequence[str] = (),
) -> Markup:
    """One polyline per series over shared x positions; None leaves a gap in the line."""
    values = [v for points in series.values() for v in points if v is not None]
    y_max = max(values, default=0.0) or 1.0
    length = max((len(points) for points in series.values()), default=0)
    plot_width = WIDTH - _LEFT - _RIGHT
    plot_height = HEIGHT - _TOP - _BOTTOM
    step = plot_width / max(length - 1, 1)
    body = []
    for number, (name, points) in enumerate(series.items()):
        colour = PALETTE[number % len(PALETTE)]
        segments: list[list[str]] = [[]]
        for index, value in enumerate(points):
            if value is None:
                segments.append([])
                continue
            x = _LEFT + index * step
            y = _TOP + plot_height - plot_height * value / y_max
            segments[-1].append(f"{x:.1f},{y:.1f}")
            hover = hovers[index] if index < len(hovers) else ""
            body.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}">'
                f"<title>{escape(name)} {escape(_number(value))} {escape(hover)}</title></circle>"
            )
        for segment in segments:
            if len(segment) > 1:
                body.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="1.5"'
                    f' points="{" ".join(segment)}"/>'
                )
        body.append(
            f'<text class="legend" x="{_LEFT + 8 + number * 110}" y="{_TOP + 10}"'
            f' fill="{colour}">{escape(name)}</text>'
        )
    return _frame(title, body, y_max, x_left, x_right)
