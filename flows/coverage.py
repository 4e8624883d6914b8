"""Community coverage: what a rebuild of the rollups would change, previewed in a scratch schema.

``elt coverage --dry-run`` builds the coverage models into ``scratch_coverage`` (the dbt var
``scratch_schema``; seeds, snapshots and everything published stay as they are) with the dbt model
``rpt_coverage_preview``, which compares them with the published ``agg_*_coverage`` tables, reads
that comparison and drops the scratch schema. ``elt coverage`` previews the same
way, then builds the published models, their tests and the change snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flows.dbt_runner import DbtResult, invoke
from loaders.common.warehouse import Warehouse

SCRATCH_SCHEMA = "scratch_coverage"
OVERRIDES_SEED = "coverage_overrides"  # a manual input: previewed from the working copy
PREVIEW_MODEL = "rpt_coverage_preview"  # the comparison, a dbt model built in the scratch schema only
LEVELS = ("municipality", "province", "region")


@dataclass
class LevelChanges:
    admin_level: str
    created: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    sample: list[tuple[Any, ...]] = field(default_factory=list)  # (change, code, published, new)


class CoverageError(RuntimeError):
    """The coverage models could not be built; the message has dbt's reason."""


def preview(warehouse: Warehouse, region: str | None = None, sample: int = 5) -> list[LevelChanges]:
    """Build the coverage models and their comparison with the published ones into the scratch
    schema, read the comparison, drop the scratch schema; raise ``CoverageError`` when the build
    fails."""
    result = build_scratch(warehouse)
    try:
        if not result.success:
            raise CoverageError(f"building the coverage preview failed: {result.message()}")
        where, params = (f"where region_code = {warehouse.paramstyle}", (region,)) if region else ("", ())
        rows = warehouse.query(
            "select admin_level, change_kind, area_code, published_estimated_population, "
            f"rebuilt_estimated_population from {SCRATCH_SCHEMA}.{PREVIEW_MODEL} {where} order by area_code",
            params,
        )
    finally:
        drop_scratch(warehouse)
    changes = {level: LevelChanges(level) for level in LEVELS}
    for level, change, code, before, after in rows:
        found = changes[level]
        setattr(found, change, getattr(found, change) + 1)
        if change != "unchanged" and len(found.sample) < sample:
            found.sample.append((change, code, before, after))
    return list(changes.values())


def build_scratch(warehouse: Warehouse) -> DbtResult:
    """The coverage models, their comparison with the published ones and the overrides seed, into the
    scratch schema (no tests, no snapshot)."""
    return invoke(
        warehouse,
        "build",
        [f"+{PREVIEW_MODEL}", OVERRIDES_SEED],
        exclude=["psgc_2025q2", "resource_type:test", "resource_type:snapshot"],
        variables={"scratch_schema": SCRATCH_SCHEMA, "scratch_seeds": [OVERRIDES_SEED]},
    )


def drop_scratch(warehouse: Warehouse) -> None:
    with warehouse.connect() as conn:
        conn.cursor().execute(f"drop schema if exists {SCRATCH_SCHEMA} cascade")


def apply(warehouse: Warehouse) -> DbtResult:
    """Build the published coverage models (with the overrides as they are now), their tests and the change
    snapshot. The PSGC reference seed is loaded by the main run (with the project's first build and when it
    changes); the hierarchy (``int_psgc_areas_located``, published as ``dim_psgc_areas``) is rebuilt from it
    here too, so the rollups never read one older than the seed (or none, on a warehouse built before
    that table existed)."""
    return invoke(
        warehouse,
        "build",
        [OVERRIDES_SEED, "int_psgc_areas_located", "dim_psgc_areas", "source:communities+"],
    )
