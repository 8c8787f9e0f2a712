"""Tables that stay readable in any terminal: a table is printed only where every value fits
whole; otherwise a narrower layout of the same facts, and at the last its rows as records
("header: value" lines, which wrap only between words).

Rich fits a table to the console by shrinking its columns, which cuts numbers, names and
hashes mid-value (or into "…"). Here a column either never wraps (`no_wrap=True`: numbers,
names, keys, hashes) or holds prose that may wrap between words; a layout is used only if
its never-wrapping columns get their full width and the others their longest word.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Column, Table
from rich.text import Text

UNBOUNDED = 10**6  # measure a table as if the terminal had no right edge


def needed_width(console: Console, table: Table) -> int:
    """The narrowest `table` prints without cutting a value: its no-wrap columns at their
    widest cell, the others at their longest word."""
    options = console.options.update_width(UNBOUNDED)
    widest = console.measure(table, options=options).maximum
    slack = 0
    for column in table.columns:
        if column.no_wrap:
            continue
        sizes = [Measurement.get(console, options, cell)
                 for cell in [column.header, *column.cells]]
        slack += max(m.maximum for m in sizes) - max(m.minimum for m in sizes)
    return widest - slack


def fits(console: Console, table: Table) -> bool:
    # Rich shrinks only the wrapping columns while it can (widest first), so with at most
    # one such column a table that fits here loses no word; with more it could cut one.
    wrapping = sum(not c.no_wrap for c in table.columns)
    return wrapping <= 1 and needed_width(console, table) <= console.width


def print_table(console: Console, *layouts: Table, records: Table | None = None) -> None:
    """Print the first of `layouts` (widest first) that fits the console; if none does,
    the rows of `records` (default: the first layout, the fullest) as records."""
    for table in layouts:
        if fits(console, table):
            console.print(table)
            return
    console.print(as_records(records or layouts[0], console.width))


def as_records(table: Table, width: int) -> RenderableType:
    """`table` as one block per row: the first column's "header: value" in bold, then the
    other columns' below it, indented; empty cells left out. A value too long to follow
    its header on one line, and not prose, starts a line of its own."""
    columns = table.columns
    parts: list[RenderableType] = []
    if table.title:
        parts.append(_text(table.title, "bold"))
    for row in zip(*(column.cells for column in columns), strict=True):
        fields = [(c, v) for c, v in zip(columns, row, strict=True) if _plain(v)]
        if not fields:
            continue
        (first, value), *rest = fields
        parts += [Text(), *_field(first, value, 0, width, "bold")]
        for column, value in rest:
            parts += _field(column, value, 2, width)
    if table.caption:
        parts.append(_text(table.caption, "dim"))
    return Group(*parts)


def _field(column: Column, value: RenderableType, indent: int, width: int,
           style: str = "") -> list[RenderableType]:
    label = _plain(column.header)
    if not isinstance(value, str | Text):
        return [Padding(value, (0, 0, 0, indent))]
    text = _text(value, style)
    if not label:
        return [Padding(text, (0, 0, 0, indent))]
    head = Text(f"{label}:", style=style or "dim")
    # prose wraps after its header; one long word (a hash, a name) fits better below it
    if " " in text.plain or indent + head.cell_len + 1 + text.cell_len <= width:
        return [Padding(Text.assemble(head, " ", text), (0, 0, 0, indent))]
    return [Padding(head, (0, 0, 0, indent)), Padding(text, (0, 0, 0, indent + 2))]


def _text(value: RenderableType, style: str) -> Text:
    text = Text.from_markup(value) if isinstance(value, str) else value
    if not isinstance(text, Text):
        text = Text(str(text))
    text.stylize(style)
    return text


def _plain(value: RenderableType) -> str:
    if isinstance(value, str):
        return Text.from_markup(value).plain.strip()
    return value.plain.strip() if isinstance(value, Text) else "?"


def numbers(table: Table, headers: Iterable[str]) -> None:
    """Add right-aligned columns that never wrap (numbers are never split)."""
    for header in headers:
        table.add_column(header, justify="right", no_wrap=True)
