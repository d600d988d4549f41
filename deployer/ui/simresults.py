"""Simulator results as data: the policy comparison (``bench/results.md``, by ``bench/policy_compare.py``)
or one ``deployer simulate --json`` run.

Pure text handling: each ``## title`` section becomes a list of blocks in their order (a plot file name,
a table with its header and rows, or a paragraph), with Markdown emphasis dropped. The dashboard renders them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from deployer.errors import UserError

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


def parse_run(text: str, title: str, plot: str | None) -> SimResults:
    """The output of ``deployer simulate --json [--compare]`` (one result or a list): one section with the
    plot written by ``--plot`` (when given) and one row per policy."""
    try:
        data = json.loads(text)
    except ValueError as err:
        raise UserError(f"{title}: not the JSON of `deployer simulate --json` ({err})") from None
    runs = data if isinstance(data, list) else [data]
    if not runs or not all(isinstance(run, dict) and "policy" in run for run in runs):
        raise UserError(f"{title}: expected the JSON of `deployer simulate --json` (objects with a policy)")
    header = ["policy", *(key for key in runs[0] if key != "policy")]  # the row's name first
    table = Table(header, [[_value(run.get(column)) for column in header] for run in runs])
    blocks = ([Block("plot", plot=plot)] if plot else []) + [Block("table", table=table)]
    return SimResults([], [Section(title, blocks)])


def _value(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{key}: {val}" for key, val in value.items())
    return "-" if value is None else str(value)
