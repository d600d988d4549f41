"""The simulator's policy comparison (``bench/results.md``, written by ``bench/policy_compare.py``) as data.

Pure text handling: each ``## trace`` section becomes its plot file name, its table (header and rows) and
its notes (the paragraph and target lines), with Markdown emphasis dropped. The dashboard renders them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_IMAGE = re.compile(r"!\[[^\]]*\]\((?P<path>[^)\s]+)\)")
_EMPHASIS = re.compile(r"\*\*|`")


@dataclass
class TraceResult:
    trace: str
    plot: str | None = None  # a file name in the plots folder
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class SimResults:
    intro: list[str]
    traces: list[TraceResult]


def _cells(line: str) -> list[str]:
    return [_plain(cell.strip()) for cell in line.strip().strip("|").split("|")]


def _plain(text: str) -> str:
    return _EMPHASIS.sub("", text)


def parse_results(markdown: str) -> SimResults:
    intro: list[str] = []
    traces: list[TraceResult] = []
    for raw in markdown.splitlines():
        line = raw.strip()
        if line.startswith("## "):
            traces.append(TraceResult(trace=line[3:].strip()))
            continue
        if not line or line.startswith("# "):
            continue
        current = traces[-1] if traces else None
        image = _IMAGE.search(line)
        if current is None:
            intro.append(_plain(line))
        elif image:
            current.plot = image.group("path").rsplit("/", 1)[-1]
        elif line.startswith("|"):
            if set(line) <= set("|-: "):
                continue  # the header separator
            if not current.header:
                current.header = _cells(line)
            else:
                current.rows.append(_cells(line))
        else:
            current.notes.append(_plain(line.removeprefix("- ")))
    return SimResults(intro, traces)
