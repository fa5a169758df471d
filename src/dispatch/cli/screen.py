"""How the issue and delivery commands print: consoles made when a command prints (so
the terminal's width, or $COLUMNS, is the one of that moment) and tables that keep within
it (80 columns included) without cutting a word or an address.

Rich is imported inside the functions: `dispatch --help` never pays for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


def console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def table(*headers: str, title: str | None = None, narrow: tuple[str, ...] = ()) -> Table:
    """A table whose cells wrap between words and, within a run of Chinese (which Rich
    takes for one word), between characters: `overflow="fold"` splits only a word longer
    than its column. The columns named in `narrow` (ids, counts, times, file names) never
    wrap: should the table still not fit, they are cut short with …"""
    from rich.table import Table

    t = Table(title=title)
    for header in headers:
        if header in narrow:
            t.add_column(header, no_wrap=True)
        else:
            t.add_column(header, overflow="fold")
    return t


def hint(out: Console, text: str, command: str) -> None:
    """A hint and the command it suggests, the command alone on its own line so that it
    can be copied whole, never wrapped."""
    out.print(text)
    out.print(command, soft_wrap=True, markup=False)
