"""Which dbt sources a run must build: those whose raw data changed since their last successful build.

A source is rebuilt when its raw schema holds a dlt load the last successful ``dbt_build`` did not see
(the newest ``load_id`` in ``raw_<source>._dlt_loads``, recorded in that build's audit metadata) that
changed data (a load whose audit row says it loaded or deleted nothing only moved dlt state; a load
without an audit row counts as a change), when
the dbt project changed (a digest of models, macros, seeds, snapshots, data tests and
``dbt_project.yml``), when the last build attempt failed, or on ``--full-refresh``. Everything is read
from the warehouse, so a run that died after loading still gets its build on the next run. A run that
changed nothing builds nothing: unchanged sources cost nothing downstream.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from loaders.common.warehouse import ROOT, Warehouse

PROJECT_PATHS = ("models", "macros", "seeds", "snapshots", "tests/dbt")


def project_fingerprint() -> str:
    """A digest of everything dbt builds from (file names and contents)."""
    digest = hashlib.sha256()
    files = [ROOT / "dbt_project.yml"]
    for folder in PROJECT_PATHS:
        files += sorted(path for path in (ROOT / folder).rglob("*") if path.is_file())
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def load_marks(warehouse: Warehouse, sources: list[str]) -> dict[str, str | None]:
    """The newest completed dlt load per source (None for a schema without ``_dlt_loads``, e.g. audit)."""
    marks: dict[str, str | None] = {}
    for source in sources:
        try:
            rows = warehouse.query(f"select max(load_id) from raw_{source}._dlt_loads where status = 0")
            marks[source] = rows[0][0]
        except Exception:  # no dlt schema (audit)
            marks[source] = None
    return marks


@dataclass
class BuildPlan:
    sources: list[str]
    reason: str
    fingerprint: str
    marks: dict[str, str | None] = field(default_factory=dict)  # what the build will have seen
    # Seeds are part of the project (the fingerprint): loaded, with the models built from them alone
    # (e.g. the PSGC hierarchy), with a source's first build and when the project changed, not for new
    # data. None = those of every source built.
    seed_sources: list[str] | None = None

    def seeds(self) -> list[str]:
        return self.sources if self.seed_sources is None else self.seed_sources

    def metadata(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "load_marks": self.marks, "sources": self.sources}


def last_build(warehouse: Warehouse) -> tuple[str | None, dict[str, Any]]:
    """(status, metadata) of the latest dbt_build attempt; (None, {}) before the first. An attempt
    still ``running`` is this run's own; an ``abandoned`` one (its run was killed) counts as failed."""
    rows = warehouse.query(
        "select status, metadata from audit.sync_runs where sync_type = 'dbt_build' "
        "and status <> 'running' order by started_at desc limit 1"
    )
    if not rows:
        return None, {}
    status, metadata = rows[0]
    try:
        return status, json.loads(metadata or "{}")
    except ValueError:
        return status, {}


def plan(warehouse: Warehouse, present: list[str], full_refresh: bool = False) -> BuildPlan:
    """The sources to build among ``present`` (those with raw data), and why."""
    fingerprint = project_fingerprint()
    marks = load_marks(warehouse, present)
    status, previous = last_build(warehouse)
    seen = previous.get("load_marks") or {}
    if full_refresh:
        return BuildPlan(present, "full refresh", fingerprint, marks)
    if status is None:
        return BuildPlan(present, "first build", fingerprint, marks)
    if status != "success":
        return BuildPlan(present, "the last build failed", fingerprint, marks)
    if previous.get("fingerprint") != fingerprint:
        return BuildPlan(present, "the dbt project changed", fingerprint, marks)
    changed = [
        source
        for source in present
        if source not in seen
        or (marks[source] != seen.get(source) and _changed_data(warehouse, source, seen))
    ]
    merged = {source: marks[source] for source in present}
    if not changed:
        return BuildPlan([], "no source changed since the last build", fingerprint, merged, [])
    first_builds = [source for source in changed if source not in seen]
    return BuildPlan(changed, f"new loads in {', '.join(changed)}", fingerprint, merged, first_builds)


def _changed_data(warehouse: Warehouse, source: str, seen: dict[str, str | None]) -> bool:
    """Whether a load after the one ``seen`` loaded or deleted rows (by the audit of its sync)."""
    after = seen.get(source) or ""
    loads = warehouse.query(
        f"select load_id from raw_{source}._dlt_loads where status = 0 and load_id > {warehouse.paramstyle}",
        (after,),
    )
    for (load_id,) in loads:
        rows = warehouse.query(
            f"select metadata from audit.sync_runs where load_id = {warehouse.paramstyle}", (load_id,)
        )
        # the source's own row has the counts (its parts' rows share the load id)
        counts = [meta for meta in (json.loads(text or "{}") for (text,) in rows) if "loaded" in meta]
        if not counts:
            return True  # loaded, but its outcome was never recorded: rebuild to be safe
        if any(meta["loaded"] or meta.get("deleted") for meta in counts):
            return True
    return False


def declared_source_tables(sources: list[str] | None = None) -> dict[str, tuple[str, list[str]]]:
    """dbt source -> (its schema, its tables), as the sources' YAML declares them (of every source for
    None)."""
    import yaml

    declared: dict[str, tuple[str, list[str]]] = {}
    for path in sorted((ROOT / "models").rglob("_*__sources.yml")):
        for source in (yaml.safe_load(path.read_text()) or {}).get("sources", []):
            if sources is None or source["name"] in sources:
                tables = [table.get("identifier", table["name"]) for table in source.get("tables", [])]
                declared[source["name"]] = (source.get("schema", source["name"]), tables)
    return declared


def missing_source_tables(warehouse: Warehouse, sources: list[str]) -> list[str]:
    """The declared source tables (``source.table``) that no load has created yet: a source with some
    of its tables (sales without a users file, registration without polling stations, no rejection
    yet) builds the models of the tables it has, and skips the others' (``source:sales.users+``)."""
    missing = []
    for source, (schema, tables) in declared_source_tables(sources).items():
        sql = f"select table_name from information_schema.tables where table_schema = {warehouse.paramstyle}"
        present = {name for (name,) in warehouse.query(sql, (schema,))}
        missing += [f"{source}.{table}" for table in tables if table not in present]
    return missing
