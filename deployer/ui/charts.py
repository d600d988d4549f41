"""Line charts as plain SVG coordinates, drawn by the page template (no script, no chart library).

Pure: series of (time, value) points in, polyline point strings and axis ticks out.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 720
HEIGHT = 240
MARGIN_LEFT = 40
MARGIN_RIGHT = 32  # room for the last time label
MARGIN_TOP = 10
MARGIN_BOTTOM = 30


@dataclass(frozen=True)
class Line:
    label: str
    points: str  # "x,y x,y ..." for <polyline points=...>
    css: str  # a class of the stylesheet's palette (line-0, line-1, ...)
    last: float


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Chart:
    lines: list[Line]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = MARGIN_LEFT
    bottom: int = HEIGHT - MARGIN_BOTTOM


def line_chart(series: Sequence[tuple[str, Sequence[tuple[float, float]]]]) -> Chart | None:
    """Scale every series to one shared time axis and a value axis starting at zero; None without data."""
    points = [p for _, values in series for p in values]
    if not points:
        return None
    t0 = min(t for t, _ in points)
    t1 = max(t for t, _ in points)
    span = (t1 - t0) or 1.0
    top = max(1.0, max(v for _, v in points))
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM

    def x(t: float) -> float:
        return MARGIN_LEFT + (t - t0) / span * plot_w

    def y(v: float) -> float:
        return MARGIN_TOP + (1 - v / top) * plot_h

    lines = [
        Line(
            label,
            " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in _steps(sorted(values))),
            f"line-{index % 6}",
            max(values)[1] if values else 0,
        )
        for index, (label, values) in enumerate(series)
    ]
    x_ticks = [Tick(x(t0 + span * i / 4), _clock(t0 + span * i / 4)) for i in range(5)]
    step = max(1, round(top / 4))
    y_ticks = [Tick(y(v), str(v)) for v in range(0, int(top) + 1, step)]
    return Chart(lines, x_ticks, y_ticks)


def _steps(values: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """A value holds until the next sample: each change becomes a vertical step, not a slope."""
    stepped: list[tuple[float, float]] = []
    for t, v in values:
        if stepped and stepped[-1][1] != v:
            stepped.append((t, stepped[-1][1]))
        stepped.append((t, v))
    return stepped


def _clock(stamp: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(stamp))
