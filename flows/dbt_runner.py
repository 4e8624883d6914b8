"""dbt in-process (one process holds a DuckDB file at a time), pointed at a warehouse.

The module is not called ``dbt``: Prefect puts an entrypoint's folder first on the import path, where a
``flows/dbt.py`` would hide the dbt package.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from loaders.common import audit
from loaders.common.warehouse import ROOT, Warehouse, redact, scoped_env


@dataclass
class DbtResult:
    success: bool
    nodes: int = 0
    passed: int = 0
    failures: list[str] = field(default_factory=list)
    error: str | None = None
    statuses: dict[str, str] = field(default_factory=dict)  # unique_id -> pass, warn, error, ...
    ages: dict[str, float] = field(default_factory=dict)  # source freshness: unique_id -> seconds

    def message(self) -> str:
        return "; ".join(self.failures) or self.error or "dbt failed"


def artifacts_path(warehouse: Warehouse, candidate: bool = False) -> Path:
    """Where dbt keeps its artifacts and log for ``warehouse``: one folder per warehouse, so runs on
    different warehouses at once never share a manifest or a partial-parse file
    (``ELT_DBT_ARTIFACTS`` overrides the parent folder, ``target/`` by default). A candidate build
    (``flows.publish``) has a folder of its own: its vars differ, and dbt parses the whole project
    again when the vars of the last parse in a folder differ."""
    parent = Path(os.environ.get("ELT_DBT_ARTIFACTS") or ROOT / "target")
    return parent / warehouse.key() / "candidate" if candidate else parent / warehouse.key()


def invoke(
    warehouse: Warehouse,
    command: str,
    select: list[str],
    *,
    exclude: list[str] | None = None,
    full_refresh: bool = False,
    variables: dict[str, object] | None = None,
    candidate: bool = False,
) -> DbtResult:
    """``dbt <command> --select ...`` against ``warehouse`` (its ELT_* settings for the duration);
    with ``candidate``, the models are built into their candidate schemas (``flows.publish``)."""
    from dbt.cli.main import dbtRunner

    artifacts = artifacts_path(warehouse, candidate)
    if candidate:
        variables = {**(variables or {}), "candidate": True}
    args = [
        *command.split(),  # "source freshness" is two words
        "--project-dir",
        str(ROOT),
        "--profiles-dir",
        str(ROOT / "profiles"),
        "--target-path",
        str(artifacts),
        "--log-path",
        str(artifacts),
        "--target",
        warehouse.target,
        "--quiet",
    ]
    if select:
        args += ["--select", *select]
    if exclude:
        args += ["--exclude", *exclude]
    if full_refresh:
        args.append("--full-refresh")
    if variables:
        args += ["--vars", json.dumps(variables)]
    # on DuckDB, dbt's instance needs the file to itself: this process's heartbeats wait meanwhile
    pause = audit.paused() if warehouse.target == "duckdb" else contextlib.nullcontext()
    with scoped_env(warehouse.env()), pause:
        result = dbtRunner().invoke(args)
    nodes = list(getattr(result.result, "results", None) or [])  # (dbt parse returns a manifest)
    failures = [
        f"{node.node.name}: {redact(str(node.message))}"
        for node in nodes
        if str(node.status) in {"error", "fail", "runtime error"}
    ]
    return DbtResult(
        success=bool(result.success),
        nodes=len(nodes),
        passed=sum(1 for node in nodes if str(node.status) in {"success", "pass"}),
        failures=failures,
        error=None if result.success else redact(str(result.exception or "dbt failed")),
        statuses={node.node.unique_id: str(node.status) for node in nodes},
        ages={node.node.unique_id: node.age for node in nodes if getattr(node, "age", None) is not None},
    )
