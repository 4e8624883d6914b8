"""dbt-project-evaluator's rules, checked by hand on the project's manifest (the evaluator is a hub package,
out of reach from these machines). Each rule names what it found, so a violation reads as the
evaluator's would. Rules and thresholds as the evaluator documents them:

* direct joins to sources: only staging models read sources;
* staging models read sources (or seeds) only: never another staging model or anything downstream;
* rejoining of upstream concepts: no model A -> B -> C where B's only child is C and C also reads A;
* model fan-out: no model with more than 3 direct children that are leaves (marts, reports);
* naming: stg_ in staging, int_ in intermediate, fct_/dim_/agg_ in marts, rpt_/sync_ in audit;
* every model documented, with its grain's primary-key test (unique + not_null on a column, or
  unique_combination_of_columns).
"""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from flows.dbt_runner import artifacts_path, invoke
from loaders.common.warehouse import Warehouse

PREFIXES = {
    "staging": ("stg_",),
    "intermediate": ("int_",),
    "marts": ("fct_", "dim_", "agg_"),
    "audit": ("rpt_", "sync_"),
}
FANOUT_THRESHOLD = 3
# Documented exceptions: an intermediate model that a mart publishes row for row has its primary key
# tested on the mart (one dbt node less per build; the registration build is node-bound, see
# bench/results/area_rollups.md). The mart is a view of an intermediate table, and a table of an
# ephemeral model (a view of it would read the raw rows as they land, before the run's checks:
# flows/publish.py).
PUBLISHED_ROW_FOR_ROW = {
    "int_registration_polling_stations_placed": ("dim_polling_stations", "table"),
    "int_registration_wards_rolled_up": ("dim_wards", "view"),
    "int_registration_constituencies_rolled_up": ("dim_constituencies", "view"),
    "int_registration_counties_rolled_up": ("dim_counties", "view"),
}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> dict:
    warehouse = Warehouse.from_env("duckdb")
    object.__setattr__(warehouse, "duckdb_path", tmp_path_factory.mktemp("graph") / "parse.duckdb")
    result = invoke(warehouse, "parse", [])
    assert result.success, result.error
    return json.loads((artifacts_path(warehouse) / "manifest.json").read_text())


def _models(manifest: dict) -> dict[str, dict]:
    return {uid: node for uid, node in manifest["nodes"].items() if node["resource_type"] == "model"}


def _layer(node: dict) -> str:
    return node["fqn"][1]  # elt.<layer>.<source folder>.<name>


def test_only_staging_reads_sources_and_staging_reads_nothing_else(manifest: dict) -> None:
    wrong = []
    for uid, node in _models(manifest).items():
        parents = manifest["parent_map"][uid]
        reads_sources = any(p.startswith("source.") for p in parents)
        if _layer(node) != "staging" and reads_sources:
            wrong.append(f"{node['name']} reads a source directly")
        if _layer(node) == "staging" and any(p.startswith("model.") for p in parents):
            wrong.append(f"{node['name']} (staging) reads a model")
    assert wrong == []


def test_no_rejoining_of_upstream_concepts(manifest: dict) -> None:
    children = manifest["child_map"]
    models = _models(manifest)
    found = []
    for a in models:
        for b in children.get(a, []):
            if b not in models:
                continue
            b_children = [c for c in children.get(b, []) if c.startswith("model.")]
            if len(b_children) == 1 and a in manifest["parent_map"][b_children[0]]:
                found.append(f"{a} -> {b} -> {b_children[0]} and {a} -> {b_children[0]}")
    assert found == []


def test_no_model_fans_out_to_more_leaves_than_the_threshold(manifest: dict) -> None:
    children = manifest["child_map"]
    models = _models(manifest)
    leaves = {uid for uid in models if not [c for c in children.get(uid, []) if c.startswith("model.")]}
    fanout = defaultdict(list)
    for uid in models:
        fanout[uid] = [c for c in children.get(uid, []) if c in leaves]
    assert {uid: kids for uid, kids in fanout.items() if len(kids) > FANOUT_THRESHOLD} == {}


def test_model_names_follow_their_layer(manifest: dict) -> None:
    wrong = [
        f"{node['name']} in {_layer(node)}"
        for node in _models(manifest).values()
        if not node["name"].startswith(PREFIXES[_layer(node)])
    ]
    assert wrong == []


def test_every_model_is_documented_and_has_a_primary_key_test(manifest: dict) -> None:
    tested: dict[str, set[str]] = defaultdict(set)
    for node in manifest["nodes"].values():
        if node["resource_type"] != "test" or not node.get("attached_node"):
            continue
        name = (node.get("test_metadata") or {}).get("name")
        column = node.get("column_name")
        tested[node["attached_node"]].add(f"{name}:{column}" if column else name)
    undocumented, without_key = [], []
    by_name = {node["name"]: uid for uid, node in _models(manifest).items()}
    for published, (mart, materialized) in PUBLISHED_ROW_FOR_ROW.items():
        assert manifest["parent_map"][by_name[mart]] == [by_name[published]]  # of it alone
        assert manifest["nodes"][by_name[mart]]["config"]["materialized"] == materialized
        tested[by_name[published]] |= tested[by_name[mart]]
    for uid, node in _models(manifest).items():
        if not node.get("description", "").strip():
            undocumented.append(node["name"])
        tests = tested[uid]
        unique_columns = {t.split(":", 1)[1] for t in tests if t.startswith("unique:")}
        not_null_columns = {t.split(":", 1)[1] for t in tests if t.startswith("not_null:")}
        if not (unique_columns & not_null_columns) and "unique_combination_of_columns" not in tests:
            without_key.append(node["name"])
    assert undocumented == []
    assert without_key == []
