"""Community coverage: what a rebuild of the rollups would change, previewed in a scratch schema.

``elt coverage --dry-run`` builds the coverage models into ``scratch_coverage`` (the dbt var
``scratch_schema``; seeds, snapshots and everything published stay as they are), compares them with the
published ``marts.agg_*_coverage`` tables and drops the scratch schema. ``elt coverage`` previews the same
way, then builds the published models, their tests and the change snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flows.dbt_runner import DbtResult, invoke
from loaders.common.warehouse import Warehouse

SCRATCH_SCHEMA = "scratch_coverage"
OVERRIDES_SEED = "coverage_overrides"  # a manual input: previewed from the working copy
MODELS = ("agg_municipality_coverage", "agg_province_coverage", "agg_region_coverage")
LEVELS = (
    ("municipality", "agg_municipality_coverage", "municipality_code"),
    ("province", "agg_province_coverage", "province_code"),
    ("region", "agg_region_coverage", "region_code"),
)
COMPARED = (
    "estimated_population",
    "households",
    "computed_estimated_population",
    "computed_households",
)


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


def _diff_level(
    warehouse: Warehouse, level: str, model: str, key: str, scratch: str, region: str | None, sample: int
) -> LevelChanges:
    changes = LevelChanges(level)
    published = f"marts.{model}" if warehouse.has_table("marts", model) else None
    differs = (
        " or ".join(f"coalesce(new.{column}, -1) <> coalesce(old.{column}, -1)" for column in COMPARED)
        + " or new.is_overridden <> old.is_overridden"
    )
    where = ""
    params: tuple[Any, ...] = ()
    if region:
        where = f"where coalesce(new.region_code, old.region_code) = {warehouse.paramstyle}"
        params = (region,)
    # nothing published yet: every row is new
    old = published or f"(select * from {scratch}.{model} where 1 = 0)"
    sql = f"""
        select
            case
                when old.{key} is null then 'created'
                when new.{key} is null then 'removed'
                when {differs} then 'updated'
                else 'unchanged'
            end as change,
            coalesce(new.{key}, old.{key}) as area_code,
            old.estimated_population as published_estimated_population,
            new.estimated_population as new_estimated_population
        from {scratch}.{model} as new
        full outer join {old} as old
            on new.{key} = old.{key}
        {where}
        order by 2
    """
    for change, code, before, after in warehouse.query(sql, params):
        setattr(changes, change, getattr(changes, change) + 1)
        if change != "unchanged" and len(changes.sample) < sample:
            changes.sample.append((change, code, before, after))
    return changes


def preview(warehouse: Warehouse, region: str | None = None, sample: int = 5) -> list[LevelChanges]:
    """Build the coverage models into the scratch schema, compare them with the published ones, drop the
    scratch schema; raise ``CoverageError`` when the build fails."""
    result = build_scratch(warehouse)
    try:
        if not result.success:
            raise CoverageError(f"building the coverage preview failed: {result.message()}")
        return [
            _diff_level(warehouse, level, model, key, SCRATCH_SCHEMA, region, sample)
            for level, model, key in LEVELS
        ]
    finally:
        drop_scratch(warehouse)


def build_scratch(warehouse: Warehouse) -> DbtResult:
    """The coverage models and the overrides seed, into the scratch schema (no tests, no snapshot)."""
    return invoke(
        warehouse,
        "build",
        [*(f"+{model}" for model in MODELS), OVERRIDES_SEED],
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
