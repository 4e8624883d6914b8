"""Level configuration of the registration source."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from loaders.common.warehouse import ConfigurationError

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class LevelConfig:
    """One administrative level, from ``[[sources.registration.levels]]``.

    ``code_width`` / ``parent_code_width`` are the zero-padded widths codes are normalised to (``1``,
    ``"1"`` and ``"001"`` are the same county). ``updated_at_column`` makes the level incremental; without
    it every run reads the whole table and only rows whose content changed are loaded.
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

    def __post_init__(self) -> None:
        names = [self.name, self.table, self.code_column, *self.figures]
        names += [c for c in (self.parent_code_column, self.name_column, self.updated_at_column) if c]
        for value in names:
            if not _IDENTIFIER.fullmatch(value or ""):
                raise ConfigurationError(
                    f"registration level {self.name!r}: {value!r} is not a plain table or column name"
                )
        if self.code_width < 1 or (self.parent_code_column and not self.parent_code_width):
            raise ConfigurationError(
                f"registration level {self.name!r}: set code_width (and parent_code_width with "
                "parent_code_column) to the zero-padded widths of the codes"
            )
        columns = [self.code_column, self.parent_code_column, self.name_column, *self.figures]
        columns.append(self.updated_at_column)
        object.__setattr__(self, "columns", tuple(dict.fromkeys(c for c in columns if c)))

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
