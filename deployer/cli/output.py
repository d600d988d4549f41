"""Where CLI output goes: results on stdout (tables or ``--json``), diagnostics on stderr.

rich is imported lazily so that ``deployer --help`` stays fast. Progress is a spinner on a TTY and
plain log lines otherwise (CI, pipes, cron).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


@cache
def stdout() -> Console:
    from rich.console import Console

    return Console(soft_wrap=True)


@cache
def stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def print_json(data: Any) -> None:
    """Machine-readable output: stable key order, one document on stdout."""
    import json

    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def info(message: str) -> None:
    stderr().print(message, markup=False, highlight=False)


def warn(message: str) -> None:
    from rich.markup import escape

    stderr().print(f"[yellow]warning:[/] {escape(message)}", highlight=False)


def error(message: str) -> None:
    from rich.markup import escape

    stderr().print(f"[bold red]error:[/] {escape(message)}", highlight=False)


def table(columns: list[str], rows: list[list[Any]], title: str | None = None) -> None:
    from rich.table import Table

    tbl = Table(title=title, show_edge=False, header_style="bold")
    for col in columns:
        tbl.add_column(col)
    for row in rows:
        tbl.add_row(*("" if cell is None else str(cell) for cell in row))
    stdout().print(tbl)


class Status:
    """A one-line status that a long operation updates: a spinner on a TTY, log lines otherwise."""

    def __init__(self, live: Any | None) -> None:
        self._live = live
        self._last: str | None = None

    def update(self, message: str) -> None:
        if message == self._last:
            return
        self._last = message
        if self._live is not None:
            self._live.update(message)
        else:
            info(message)


@contextmanager
def status(initial: str) -> Iterator[Status]:
    console = stderr()
    if console.is_terminal:
        with console.status(initial) as live:
            yield Status(live)
    else:
        st = Status(None)
        st.update(initial)
        yield st


class LiveArea:
    """A region of stderr that a subclass's ``render()`` redraws in place, on a terminal only.

    Elsewhere (CI, pipes) ``live`` is False and the subclass writes log lines instead. Subclasses set
    what ``render`` reads before calling ``super().__init__()``.
    """

    def __init__(self) -> None:
        self._live: Any = None
        console = stderr()
        if console.is_terminal:
            from rich.live import Live

            self._live = Live(self.render(), console=console, transient=False)

    @property
    def live(self) -> bool:
        return self._live is not None

    def render(self) -> Any:
        raise NotImplementedError

    def refresh(self) -> None:
        if self._live is not None:
            self._live.update(self.render())

    def __enter__(self) -> Any:
        if self._live is not None:
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
