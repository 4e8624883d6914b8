"""Write, audit, publish: a run's models become visible only after its dbt tests and expectations pass.

A run's ``dbt build`` writes every model it rebuilds into ``<schema>__candidate`` (``marts__candidate``,
``audit__candidate``, ...; the dbt var ``candidate``, see ``macros/generate_schema_name.sql``), where
dbt's tests and the Great Expectations suites check them. Readers keep querying the published
relations (``marts.fct_sales``), which have not changed. When every check passed, :func:`publish` moves
the candidates over the published relations in one transaction:

* PostgreSQL: ``DROP`` the published relation and ``ALTER ... SET SCHEMA`` the candidate into its place
  (a catalog change; the rows were written by the build). Views keep pointing at the tables they were
  built on, which move with them. A reader's statement runs wholly before or wholly after the commit.
* DuckDB (no ``SET SCHEMA``): the published tables are dropped and written again from the candidates,
  with the candidates' own DDL (types and constraints), and the views created again, all in one
  transaction. Only the run's own process can open the file meanwhile.

A failed check publishes nothing: the candidate schemas stay for inspection and go at the start of the
next run (:func:`drop_candidates`) or with ``elt cleanup``. Models a build does not rebuild have no
candidate; a candidate's ``ref`` to one of them reads the published relation (``macros/ref.sql``).

An incremental model (and a snapshot, which adds to its history the same way) is cloned into its
candidate schema before the build (:func:`clone_incrementals`), so the build adds its increment to a
copy of the published table instead of rebuilding it in full; a snapshot's new versions are published
with the models they record, or not at all. Seeds are not candidates: they change with the project.
"""

from __future__ import annotations

import graphlib
import random
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from loaders.common.warehouse import Warehouse

if TYPE_CHECKING:
    from flows.manifest import Model

SUFFIX = "__candidate"
LOCK_WAIT_SECONDS = 60.0  # how long a publish keeps trying to take the published relations from readers
_CANDIDATE_NAME = re.compile(rf'("?)(\w+){SUFFIX}\1\.("?)(\w+)\3')  # a candidate relation a view reads
M = TypeVar("M", bound="Model")


def candidate_schema(schema: str) -> str:
    return f"{schema}{SUFFIX}"


def published_schema(schema: str) -> str:
    return schema.removesuffix(SUFFIX)


@dataclass(frozen=True)
class Candidate:
    schema: str  # the published schema (``marts``)
    name: str
    kind: str  # table | view

    @property
    def published(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def candidate(self) -> str:
        return f"{candidate_schema(self.schema)}.{self.name}"


@dataclass
class Published:
    """What one publish swapped: per relation its kind and its rows before (None: new) and after."""

    relations: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    tries: int = 1  # swaps tried: more than one when readers held the published relations

    def summary(self) -> str:
        changed = sum(1 for entry in self.relations if entry["rows_before"] != entry["rows_after"])
        return f"{len(self.relations)} relations published ({changed} with a different row count)"


def candidate_schemas(warehouse: Warehouse) -> list[str]:
    """The candidate schemas in the warehouse (of this run's build, or left by a failed one)."""
    rows = warehouse.query("select schema_name from information_schema.schemata")
    return sorted({name for (name,) in rows if name.endswith(SUFFIX)})


def candidates(warehouse: Warehouse) -> list[Candidate]:
    """Every relation in the candidate schemas, tables first."""
    rows = warehouse.query("select table_schema, table_name, table_type from information_schema.tables")
    found = [
        Candidate(published_schema(schema), name, "view" if kind == "VIEW" else "table")
        for schema, name, kind in rows
        if schema.endswith(SUFFIX)
    ]
    return sorted(found, key=lambda c: (c.kind != "table", c.schema, c.name))


def drop_candidates(warehouse: Warehouse) -> list[str]:
    """Drop every candidate schema; return their names."""
    schemas = candidate_schemas(warehouse)
    if schemas:
        with warehouse.connect() as conn:
            cursor = conn.cursor()
            for schema in schemas:
                cursor.execute(f'drop schema if exists "{schema}" cascade')
    return schemas


def kept_message(warehouse: Warehouse) -> str | None:
    """The sentence a failed run ends with: nothing was published, and where its candidate is kept
    (None when no candidate was built)."""
    schemas = candidate_schemas(warehouse)
    if not schemas:
        return None
    return (
        f"nothing was published (the candidate is kept in {', '.join(schemas)} for inspection; the "
        "next run or `elt cleanup` removes it)"
    )


def in_candidate(warehouse: Warehouse, *found: Mapping[str, M]) -> list[dict[str, M]]:
    """Each mapping of models with every relation that has a candidate read from the candidate."""
    present = {c.published: c.candidate for c in candidates(warehouse)}
    return [
        {
            name: replace(model, relation=present[model.relation]) if model.relation in present else model
            for name, model in models.items()
        }
        for models in found
    ]


def clone_incrementals(warehouse: Warehouse, relations: Iterable[str]) -> list[str]:
    """Copy each published table of ``relations`` (``schema.name``, the incremental models and
    snapshots the build will run) into its candidate schema, so the build adds the increment to a
    copy instead of building the model in full; return those copied (one not published yet is built
    in full)."""
    existing = _kinds(warehouse)
    wanted = [relation for relation in relations if existing.get(relation) == "table"]
    if not wanted:
        return []
    with warehouse.connect() as conn:
        cursor = conn.cursor()
        for relation in wanted:
            schema, name = relation.split(".", 1)
            cursor.execute(f'create schema if not exists "{candidate_schema(schema)}"')
            _copy_table(cursor, warehouse, schema, candidate_schema(schema), name)
    return wanted


def publish(warehouse: Warehouse, wait_seconds: float = LOCK_WAIT_SECONDS) -> Published:
    """Move every candidate over its published relation, in one transaction; drop the candidate
    schemas. On PostgreSQL the transaction first takes every published relation it replaces from its
    readers at once, without waiting (a publish that waited holding one relation could deadlock with
    a reader holding the next); while a reader holds one, it tries again for up to ``wait_seconds``,
    then raises :class:`PublishBusy` having changed nothing."""
    started = time.perf_counter()
    found = candidates(warehouse)
    if warehouse.target == "duckdb":
        found = _views_after_what_they_read(warehouse, found)
    existing = _kinds(warehouse)
    with warehouse.connect() as conn:  # (no run but this one writes them: the warehouse lock)
        cursor = conn.cursor()
        counts = {
            candidate: (
                _count(cursor, candidate.published) if candidate.published in existing else None,
                _count(cursor, candidate.candidate),
            )
            for candidate in found
        }
    replaced = [candidate.published for candidate in found if candidate.published in existing]
    deadline = time.monotonic() + wait_seconds
    tries = 0
    while True:
        tries += 1
        try:
            _swap(warehouse, found, existing, replaced)
            break
        except _Held as held:
            if time.monotonic() > deadline:
                raise PublishBusy(
                    f"could not take {', '.join(replaced)} from their readers for {wait_seconds:g} s "
                    f"({held}): nothing was published"
                ) from None
            time.sleep(random.uniform(0.01, 0.1))
    result = Published(seconds=round(time.perf_counter() - started, 3), tries=tries)
    for candidate in found:
        rows_before, rows_after = counts[candidate]
        result.relations.append(
            {
                "relation": candidate.published,
                "kind": candidate.kind,
                "rows_before": rows_before,
                "rows_after": rows_after,
            }
        )
    return result


class PublishBusy(RuntimeError):
    """Readers held the published relations for longer than the publish waits."""


class _Held(Exception):
    """A reader holds a relation the publish replaces (PostgreSQL's lock_not_available)."""


def _swap(
    warehouse: Warehouse, found: list[Candidate], existing: dict[str, str], replaced: list[str]
) -> None:
    """One transaction: the published relations dropped and the candidates put in their place."""
    with warehouse.connect() as conn:
        cursor = conn.cursor()
        if warehouse.target == "postgres" and replaced:
            import psycopg2.errors

            try:
                locked = ", ".join(_quoted(relation) for relation in replaced)
                cursor.execute(f"lock table {locked} in access exclusive mode nowait")
            except psycopg2.errors.LockNotAvailable as exc:
                raise _Held(str(exc).splitlines()[0]) from None
        for schema in sorted({candidate.schema for candidate in found}):
            cursor.execute(f'create schema if not exists "{schema}"')
        for candidate in found:
            before = existing.get(candidate.published)
            if before:
                cascade = " cascade" if warehouse.target == "postgres" else ""
                cursor.execute(f"drop {before} if exists {_quoted(candidate.published)}{cascade}")
            if warehouse.target == "postgres":
                moved = _quoted(candidate.candidate)
                cursor.execute(f'alter {candidate.kind} {moved} set schema "{candidate.schema}"')
            elif candidate.kind == "table":
                source = candidate_schema(candidate.schema)
                _copy_table(cursor, warehouse, source, candidate.schema, candidate.name)
            else:
                cursor.execute(_view_sql(cursor, candidate))
        for schema in sorted({candidate_schema(c.schema) for c in found}):
            cursor.execute(f'drop schema if exists "{schema}" cascade')


# -- helpers --------------------------------------------------------------------------------------


def _kinds(warehouse: Warehouse) -> dict[str, str]:
    """``schema.name`` -> table | view, of every relation outside the candidate schemas."""
    rows = warehouse.query("select table_schema, table_name, table_type from information_schema.tables")
    return {
        f"{schema}.{name}": "view" if kind == "VIEW" else "table"
        for schema, name, kind in rows
        if not schema.endswith(SUFFIX)
    }


def _quoted(relation: str) -> str:
    schema, name = relation.split(".", 1)
    return f'"{schema}"."{name}"'


def _count(cursor: Any, relation: str) -> int:
    cursor.execute(f"select count(*) from {_quoted(relation)}")
    return int(cursor.fetchone()[0])


def _copy_table(cursor: Any, warehouse: Warehouse, source: str, target: str, name: str) -> None:
    """``target.name`` as a copy of ``source.name``: its columns, types and constraints, and its rows
    (dropped first when it exists)."""
    cursor.execute(f'drop table if exists "{target}"."{name}"')
    if warehouse.target == "postgres":
        cursor.execute(f'create table "{target}"."{name}" (like "{source}"."{name}" including all)')
    else:
        cursor.execute(
            "select sql from duckdb_tables() where schema_name = ? and table_name = ?", (source, name)
        )
        cursor.execute(_moved(cursor.fetchone()[0], {source: target}))
    cursor.execute(f'insert into "{target}"."{name}" select * from "{source}"."{name}"')


def _views_after_what_they_read(warehouse: Warehouse, found: list[Candidate]) -> list[Candidate]:
    """DuckDB binds a view's query when it is created: the tables first, then each view after the
    candidate views its statement names."""
    statements = {
        f"{published_schema(schema)}.{name}": sql
        for schema, name, sql in warehouse.query("select schema_name, view_name, sql from duckdb_views()")
        if schema.endswith(SUFFIX)
    }
    views = {candidate.published: candidate for candidate in found if candidate.kind == "view"}
    graph = {
        relation: {
            f"{schema}.{name}"
            for _, schema, _, name in re.findall(
                rf'("?)(\w+){SUFFIX}\1\.("?)(\w+)\3', statements.get(relation, "")
            )
        }
        & views.keys() - {relation}  # (its own name, in its CREATE VIEW)
        for relation in views
    }
    ordered = [views[relation] for relation in graphlib.TopologicalSorter(graph).static_order()]
    return [candidate for candidate in found if candidate.kind == "table"] + ordered


def _view_sql(cursor: Any, candidate: Candidate) -> str:
    """DuckDB: the candidate view's statement, creating it in the published schema and reading the
    published relations where it read candidates."""
    cursor.execute(
        "select sql from duckdb_views() where schema_name = ? and view_name = ?",
        (candidate_schema(candidate.schema), candidate.name),
    )
    sql = cursor.fetchone()[0]
    schemas = {schema for _, schema, _, _ in _CANDIDATE_NAME.findall(sql)}
    return _moved(sql, {candidate_schema(schema): schema for schema in schemas})


def _moved(sql: str, schemas: Mapping[str, str]) -> str:
    """``sql`` with the schema qualifiers ``schemas`` names (quoted or not) replaced."""
    for old, new in schemas.items():
        sql = re.sub(rf'(?<![\w"])("?){re.escape(old)}\1\.', rf"\g<1>{new}\g<1>.", sql)
    return sql
