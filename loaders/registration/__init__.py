"""Voter registration: administrative levels read from the team's registration database.

Each configured level (``[[sources.registration.levels]]``: counties, constituencies, wards, polling
stations) is read with dlt's ``sql_table`` from any SQLAlchemy URL (``sources.registration.credentials``,
a secret) and lands in ``raw_registration.<level>``, merged on the normalised code:

* codes (and parent codes) are normalised to their zero-padded form, so ``1`` and ``001`` are one county;
  a row whose code or figures cannot be read, or whose code repeats, goes to ``rejected_rows`` with the
  reason;
* a level with an ``updated_at_column`` is read incrementally (dlt cursor, kept in the warehouse); the
  others are read whole, and only rows whose content differs from the stored row (``_row_hash``) are
  loaded, so an unchanged source costs nothing downstream;
* codes that disappeared from the source are deleted from the warehouse (tombstones with dlt's
  ``hard_delete``), on every run and for both kinds of level.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import dlt
import sqlalchemy as sa
from dlt.sources.sql_database import sql_table

from loaders.common.pipeline import RunOptions
from loaders.common.quarantine import LoadStats, quarantined, rejection
from loaders.common.sqlsource import connect_source
from loaders.common.values import figure, normalise_code, row_hash
from loaders.common.warehouse import ConfigurationError, Warehouse
from loaders.registration.helpers import LevelConfig
from loaders.registration.settings import (
    CODE,
    DATASET,
    DEFAULT_CHUNK_SIZE,
    DELETED,
    NAME,
    PARENT_CODE,
    ROW_HASH,
    SOURCE_UPDATED_AT,
)

MERGE = {"disposition": "merge", "strategy": "delete-insert"}
LAG_SECONDS = 300


def level_columns(level: LevelConfig) -> dict[str, dict[str, Any]]:
    columns: dict[str, dict[str, Any]] = {
        CODE: {"data_type": "text"},
        PARENT_CODE: {"data_type": "text"},
        NAME: {"data_type": "text"},
    }
    columns.update({name: {"data_type": "bigint"} for name in level.figure_columns.values()})
    columns[SOURCE_UPDATED_AT] = {"data_type": "timestamp"}
    columns[ROW_HASH] = {"data_type": "text"}
    columns["_loaded_at"] = {"data_type": "timestamp"}
    columns[DELETED] = {"data_type": "bool", "hard_delete": True}
    return columns


@dlt.source(name="registration", max_table_nesting=0)
def registration(
    credentials: str = dlt.secrets.value,
    levels: list[dict[str, Any]] = dlt.config.value,
    selected: Sequence[str] | None = None,
    stored: Mapping[str, Mapping[str, str]] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    stats: LoadStats | None = None,
    full_refresh: bool = False,
) -> Iterable[Any]:
    """One resource per level (and one for its deletions).

    ``selected`` names the levels to read (all when None); ``stored`` maps level -> code -> ``_row_hash``
    of the rows in the warehouse (``stored_rows``); ``full_refresh`` reloads
    every row and reads incremental levels from the start.
    """
    configs = [LevelConfig.from_config(entry) for entry in levels]
    known = {level.name for level in configs}
    wanted = list(selected) if selected else [level.name for level in configs]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise ConfigurationError(
            f"unknown registration level(s) {', '.join(unknown)}: configured are {', '.join(known)}"
        )
    stats = stats if stats is not None else LoadStats()
    engine = connect_source(
        credentials, "the registration source database", "sources.registration.credentials"
    )
    resources = []
    for level in configs:
        if level.name not in wanted:
            continue
        rows = {} if full_refresh else dict((stored or {}).get(level.name, {}))
        stats.part(f"registration.{level.name}")  # every level read is audited, even with nothing new
        reader = _reader(engine, level, chunk_size, full_refresh)
        resources.append(reader | _level_rows(level, rows, stats))
        resources.append(_deletions(level, engine, rows, stats))
    return resources


def _reader(engine: Any, level: LevelConfig, chunk_size: int, full_refresh: bool) -> Any:
    """dlt's sql_table for a level's source table: its configured columns, incremental on its
    ``updated_at`` column where it has one."""
    incremental = None
    if level.updated_at_column and not full_refresh:
        incremental = dlt.sources.incremental(
            level.cursor_path,
            row_order="asc",
            # rows without a timestamp are read every run (and loaded only when changed)
            on_cursor_value_missing="include",
            # the last LAG_SECONDS are read again, so a row committed late with an earlier
            # timestamp is not missed; unchanged rows are then skipped by their hash. (The
            # default closed range keeps a list of row hashes in the state whose order
            # changes every run, which made every run a new load.)
            range_start="open",
            lag=LAG_SECONDS,
        )
    return sql_table(
        credentials=engine,
        table=level.table,
        schema=level.schema,
        chunk_size=chunk_size,
        backend="sqlalchemy",
        reflection_level="minimal",
        included_columns=list(level.columns),
        incremental=incremental,
    ).with_name(f"read_{level.name}")


def _level_rows(level: LevelConfig, stored: Mapping[str, str], stats: LoadStats) -> Any:
    seen: set[str] = set()
    position = 0  # the row's place in the read, for the quarantine's locator
    hashed = (CODE, PARENT_CODE, NAME, *level.figure_columns.values())

    @dlt.transformer(
        name=level.name,
        table_name=level.name,
        write_disposition=MERGE,
        primary_key=CODE,
        columns=level_columns(level),
    )
    def rows(page: list[dict[str, Any]]) -> Iterator[Any]:
        loaded_at = datetime.now(UTC)
        good: list[dict[str, Any]] = []
        bad: list[dict[str, Any]] = []
        stats.read += len(page)
        stats.part(f"registration.{level.name}", processed=len(page))
        nonlocal position
        for record in page:
            position += 1
            try:
                row = _normalised(level, record)
                if row[CODE] in seen:
                    raise ValueError(f"code {row[CODE]} appears more than once in {level.table}")
            except ValueError as exc:
                bad.append(
                    rejection(
                        source_name="registration",
                        locator=f"{level.table} ({level.name}) row {position}",
                        raw_record=record,
                        reason=str(exc),
                        rejected_at=loaded_at,
                    )
                )
                continue
            seen.add(row[CODE])
            row[ROW_HASH] = row_hash(row, hashed)
            if stored.get(row[CODE]) == row[ROW_HASH]:
                stats.unchanged += 1
                continue
            row["_loaded_at"] = loaded_at
            row[DELETED] = False
            good.append(row)
        stats.loaded += len(good)
        if bad:
            stats.rejected += len(bad)
            stats.part(f"registration.{level.name}", rejected=len(bad))
            yield quarantined(bad)
        if good:
            yield good

    return rows


def _normalised(level: LevelConfig, record: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {CODE: normalise_code(record.get(level.code_column), level.code_width)}
    if level.parent_code_column:
        try:
            row[PARENT_CODE] = normalise_code(
                record.get(level.parent_code_column), level.parent_code_width or 0
            )
        except ValueError as exc:
            raise ValueError(f"parent {exc}") from None
    else:
        row[PARENT_CODE] = None
    name = record.get(level.name_column) if level.name_column else None
    row[NAME] = str(name).strip() if name is not None else None
    for column, landed in level.figure_columns.items():
        row[landed] = figure(record.get(column), column)
    updated = record.get(level.updated_at_column) if level.updated_at_column else None
    if isinstance(updated, datetime) and updated.tzinfo is None:
        updated = updated.replace(tzinfo=UTC)
    row[SOURCE_UPDATED_AT] = updated
    return row


def _deletions(level: LevelConfig, engine: sa.Engine, stored: Mapping[str, str], stats: LoadStats) -> Any:
    """Tombstones for the stored codes the source no longer has (read: the source's code column only)."""

    @dlt.resource(
        name=f"{level.name}_deletions",
        table_name=level.name,
        write_disposition=MERGE,
        primary_key=CODE,
        columns=level_columns(level),
    )
    def deletions() -> Iterator[Any]:
        if not stored:
            return
        table = sa.table(level.table, sa.column(level.code_column), schema=level.schema)
        present: set[str] = set()
        with engine.connect() as conn:
            for (value,) in conn.execute(sa.select(table.c[level.code_column])):
                try:
                    present.add(normalise_code(value, level.code_width))
                except ValueError:
                    continue  # the rows resource quarantines it
        gone = sorted(set(stored) - present)
        if gone:
            stats.deleted += len(gone)
            yield [{CODE: code, DELETED: True} for code in gone]

    return deletions


def build(stats: LoadStats, options: RunOptions, warehouse: Warehouse) -> Any:
    """The ``registration`` sync as a run builds it."""
    return registration(
        selected=options.levels, stored=stored_rows(warehouse), stats=stats, full_refresh=options.full_refresh
    )


def stored_rows(warehouse: Warehouse) -> dict[str, dict[str, str]]:
    """level -> code -> ``_row_hash`` of the rows in the warehouse (to skip unchanged rows and to find
    the codes the source no longer has)."""
    tables = warehouse.query(
        f"select table_name from information_schema.tables where table_schema = {warehouse.paramstyle}",
        (DATASET,),
    )
    return {
        level: dict(warehouse.query(f'select code, _row_hash from {DATASET}."{level}"'))
        for (level,) in sorted(tables)
        if not level.startswith("_dlt") and level != "rejected_rows"
    }
