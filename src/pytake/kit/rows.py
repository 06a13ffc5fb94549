"""Complete rows for Core INSERTs, with each column's default taken from the model.

The hot paths (webhook ingest, CSV import, sending to a new number) insert with multi-row Core
statements rather than ORM units, and every row of such a statement must name the same columns.
A `RowBuilder` derives those columns and their defaults from the table once, so a caller names
only what it knows and a column added to a model reaches every insert without hand-copied lists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Table


class _Context:
    """What a context-sensitive column default reads (SQLAlchemy's `get_current_parameters`)."""

    __slots__ = ("_row",)

    def __init__(self, row: dict[str, Any]) -> None:
        self._row = row

    def get_current_parameters(self) -> dict[str, Any]:
        return self._row


class RowBuilder:
    """Rows for `table`: `row(**values)` fills every column the caller does not name.

    A column gets its model default (a value, or a function called per row, seeing the row as
    SQLAlchemy's own defaults do), else NULL. Columns with only a server default are left out
    of the rows, so the database fills them. A required column (NOT NULL without any default)
    left out, or a name that is no column, is a programming error and raises.
    """

    def __init__(self, table: Table) -> None:
        self.table = table
        fixed: dict[str, Any] = {}
        computed: list[tuple[str, Callable[[Any], Any]]] = []
        required: set[str] = set()
        columns: list[str] = []
        for column in table.columns:
            default = column.default
            if default is None and column.server_default is not None:
                continue
            columns.append(column.key)
            if default is None:
                if not column.nullable and column is not table.autoincrement_column:
                    required.add(column.key)
                fixed[column.key] = None
            elif getattr(default, "is_callable", False):
                computed.append((column.key, default.arg))  # type: ignore[attr-defined]
            else:
                fixed[column.key] = default.arg  # type: ignore[attr-defined]
        self.columns: tuple[str, ...] = tuple(columns)
        self._names = frozenset(columns)
        self._fixed = fixed
        self._computed = computed
        self._required = frozenset(required)

    def row(self, **values: Any) -> dict[str, Any]:
        """One complete row: `values` over the model's defaults."""
        if unknown := values.keys() - self._names:
            raise TypeError(f"{self.table.name} has no column {', '.join(sorted(unknown))}")
        if missing := self._required - values.keys():
            raise TypeError(f"{self.table.name} row needs {', '.join(sorted(missing))}")
        row = {**self._fixed, **values}
        for name, default in self._computed:
            if name not in values:
                row[name] = default(_Context(row))
        return row
