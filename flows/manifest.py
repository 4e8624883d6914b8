"""What dbt knows of its models, read from its manifest instead of copied into Python: which dbt sources
each model is built from (its lineage) and what its YAML ``meta`` declares for the run:

* ``expectations: {...}`` - the Great Expectations checks of the mart after the build, described as
  ``flows.expectations`` says;
* ``rollup: <sync type>`` - its rows are audited as that sync type after the build;
* ``finding: {what, where, count_where}`` - the rows matching ``count_where`` are counted in the run
  summary as "N <what> (<where>)".

The manifest is the one dbt wrote for this warehouse (``flows.dbt_runner.artifacts_path``) at its last
invocation, a build in the same run as a rule; when there is none yet, ``dbt parse`` writes it. A
candidate build's manifest (``flows.publish``) names the candidate schemas; relations are read as
published (``marts.fct_sales``) whichever manifest is the newer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from loaders.common.warehouse import Warehouse

CANDIDATE = "__candidate"  # flows.publish.SUFFIX (flows.publish reads Model from here: no cycle)


@dataclass(frozen=True)
class Model:
    name: str
    relation: str  # schema.name, as readers query it
    sources: frozenset[str]  # the dbt sources it is built from, however far up
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    source_tables: frozenset[str] = frozenset()  # the same, as ``source.table``
    materialized: str | None = None  # table, view, incremental, ... (None for seeds and snapshots)
    resource_type: str = "model"  # model, snapshot or seed


def models(warehouse: Warehouse) -> dict[str, Model]:
    """Every model, snapshot and seed of the project, by name."""
    from flows.dbt_runner import artifacts_path, invoke

    found = [
        path
        for path in (artifacts_path(warehouse, candidate) / "manifest.json" for candidate in (False, True))
        if path.exists()
    ]
    if not found:
        invoke(warehouse, "parse", [])
        found = [artifacts_path(warehouse) / "manifest.json"]
    path = max(found, key=lambda path: path.stat().st_mtime_ns)
    return _read(path, path.stat().st_mtime_ns)


@cache
def _read(path: Path, _version: int) -> dict[str, Model]:
    manifest = json.loads(path.read_text())
    parents: dict[str, list[str]] = manifest["parent_map"]
    source_tables = {
        uid: f"{node['source_name']}.{node['name']}" for uid, node in manifest["sources"].items()
    }
    upstream: dict[str, frozenset[str]] = {}

    def tables_of(uid: str) -> frozenset[str]:
        if uid in source_tables:
            return frozenset({source_tables[uid]})
        if uid not in upstream:
            upstream[uid] = frozenset()  # (a cycle cannot happen in dbt; this only stops recursion)
            upstream[uid] = frozenset().union(*(tables_of(parent) for parent in parents.get(uid, [])))
        return upstream[uid]

    found = {}
    for uid, node in manifest["nodes"].items():
        if node["resource_type"] not in ("model", "snapshot", "seed"):
            continue
        meta = {**node.get("meta", {}), **node.get("config", {}).get("meta", {})}
        schema = node["schema"].removesuffix(CANDIDATE)  # (a candidate build's manifest)
        relation = f"{schema}.{node.get('alias') or node['name']}"
        tables = tables_of(uid)
        sources = frozenset(table.split(".", 1)[0] for table in tables)
        config = node.get("config", {})
        materialized = config.get("materialized") if node["resource_type"] == "model" else None
        found[node["name"]] = Model(
            node["name"], relation, sources, meta, tables, materialized, node["resource_type"]
        )
    return found


def declaring(warehouse: Warehouse, key: str) -> list[Model]:
    """The models whose meta declares ``key``, by name."""
    return sorted((m for m in models(warehouse).values() if key in m.meta), key=lambda m: m.name)


def read_source_tables(warehouse: Warehouse) -> frozenset[str]:
    """The source tables (``source.table``) some model reads, however far down: a declared table no
    model reads (a quarantine before its first rejection, say) keeps nothing waiting."""
    return frozenset().union(*(model.source_tables for model in models(warehouse).values()))
