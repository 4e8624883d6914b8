"""Level configuration of the registration source."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from dlt.common.normalizers.naming.snake_case import NamingConvention as SnakeCaseNaming

from loaders.common.warehouse import ConfigurationError

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")
_NAMING = SnakeCaseNaming()


@dataclass(frozen=True)
class LevelConfig:
    """One administrative level, from ``[[sources.registration.levels]]``.

    ``code_width`` / ``parent_code_width`` are the zero-padded widths codes are normalised to (``1``,
    ``"1"`` and ``"001"`` are the same county). ``updated_at_column`` makes the level incremental; without
    it every run reads the whole table and only rows whose content changed are loaded.

    Table and column names are the source's, as they are (``Registered Voters 2022`` is a column name
    like any other; SQLAlchemy quotes it). A figure lands in the warehouse under its snake_case name
    (``registered_voters_2022``), ``figure_columns`` maps one to the other. The level's own ``name``
    names a warehouse table, so it must be a plain identifier.
    """

    name: str
    table: str
    code_column: str
    code_width: int
    figures: tuple[str, ...]
    parent_code_column: str | None = None
    parent_code_width: int | None = None
    name_column: str | None = None
    updated_at_column: str | None = None
    schema: str | None = None
    columns: tuple[str, ...] = field(init=False)
    figure_columns: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        if not _IDENTIFIER.fullmatch(self.name or ""):
            raise ConfigurationError(
                f"registration level {self.name!r}: a level's name names its warehouse table: use "
                "letters, digits and underscores (the source's own table goes in `table`)"
            )
        names = [self.table, self.code_column, *self.figures, self.schema]
        names += [self.parent_code_column, self.name_column, self.updated_at_column]
        for value in names:
            if value is not None and (not value.strip() or _UNPRINTABLE.search(value)):
                raise ConfigurationError(
                    f"registration level {self.name!r}: {value!r} is not a table or column name"
                )
        figure_columns = {name: _NAMING.normalize_identifier(name) for name in self.figures}
        reserved = {"code", "parent_code", "name", "source_updated_at"}
        clashes = sorted(
            name
            for name, column in figure_columns.items()
            if column in reserved or list(figure_columns.values()).count(column) > 1
        )
        if clashes:
            raise ConfigurationError(
                f"registration level {self.name!r}: figure(s) {clashes} would land in the same warehouse "
                "column as another figure or as the code, parent code, name or timestamp"
            )
        object.__setattr__(self, "figure_columns", figure_columns)
        if self.updated_at_column and '"' in self.updated_at_column:
            raise ConfigurationError(
                f"registration level {self.name!r}: updated_at_column {self.updated_at_column!r} has a "
                "double quote; rename the column or leave the level without one"
            )
        if self.code_width < 1 or (self.parent_code_column and not self.parent_code_width):
            raise ConfigurationError(
                f"registration level {self.name!r}: set code_width (and parent_code_width with "
                "parent_code_column) to the zero-padded widths of the codes"
            )
        columns = [self.code_column, self.parent_code_column, self.name_column, *self.figures]
        columns.append(self.updated_at_column)
        object.__setattr__(self, "columns", tuple(dict.fromkeys(c for c in columns if c)))

    @property
    def cursor_path(self) -> str | None:
        """``updated_at_column`` as dlt's incremental takes it: a JSON path, quoted unless a plain name."""
        column = self.updated_at_column
        if column is None or _IDENTIFIER.fullmatch(column):
            return column
        return f'"{column}"'

    @classmethod
    def from_config(cls, entry: dict[str, Any]) -> LevelConfig:
        try:
            return cls(
                name=entry["name"],
                table=entry.get("table") or entry["name"],
                code_column=entry.get("code_column", "code"),
                code_width=int(entry["code_width"]),
                figures=tuple(entry.get("figures") or ()),
                parent_code_column=entry.get("parent_code_column") or None,
                parent_code_width=int(entry["parent_code_width"]) if entry.get("parent_code_width") else None,
                name_column=entry.get("name_column") or None,
                updated_at_column=entry.get("updated_at_column") or None,
                schema=entry.get("schema") or None,
            )
        except KeyError as exc:
            raise ConfigurationError(
                f"[[sources.registration.levels]] entry {entry.get('name', '?')!r} lacks {exc.args[0]!r}"
            ) from None
