"""The simulator's policy comparison (``bench/results.md``, written by ``bench/policy_compare.py``) as data.

Pure text handling: each ``## title`` section becomes a list of blocks in their order (a plot file name,
a table with its header and rows, or a paragraph), with Markdown emphasis dropped. The dashboard renders them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_IMAGE = re.compile(r"^!\[[^\]]*\]\((?P<path>[^)\s]+)\)$")
_EMPHASIS = re.compile(r"\*\*|`")


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)


@dataclass
class Block:
    kind: str  # plot | table | text
    plot: str = ""  # a file name in the plots folder
    table: Table | None = None
    text: str = ""


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class SimResults:
    intro: list[str]
    sections: list[Section]


def _cells(line: str) -> list[str]:
    return [_plain(cell.strip()) for cell in line.strip().strip("|").split("|")]


def _plain(text: str) -> str:
    return _EMPHASIS.sub("", text)


def parse_results(markdown: str) -> SimResults:
    intro: list[str] = []
    sections: list[Section] = []
    in_table = False
    for raw in markdown.splitlines():
        line = raw.strip()
        is_row = line.startswith("|")
        if line.startswith("## "):
            sections.append(Section(line[3:].strip()))
        elif not line or line.startswith("# "):
            pass
        elif not sections:
            intro.append(_plain(line))
        elif is_row and set(line) <= set("|-: "):
            pass  # a table's header separator
        elif is_row and in_table:
            table = sections[-1].blocks[-1].table
            assert table is not None
            table.rows.append(_cells(line))
        elif is_row:
            sections[-1].blocks.append(Block("table", table=Table(_cells(line))))
        elif image := _IMAGE.match(line):
            sections[-1].blocks.append(Block("plot", plot=image.group("path").rsplit("/", 1)[-1]))
        else:
            sections[-1].blocks.append(Block("text", text=_plain(line.removeprefix("- "))))
        in_table = is_row and bool(sections)
    return SimResults(intro, sections)
