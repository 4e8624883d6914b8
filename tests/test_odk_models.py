"""The ODK Central dbt models on both targets: staging, and the incremental unified rental mart.

Raw tables are created as ``loaders/odk_central/README.md`` describes them (JSON text in ``data``);
dbt runs in-process on the models' graph only (the sales sources do not exist here).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from loaders.common.warehouse import ROOT, Warehouse

MART = "fct_rental_submissions_unified"
FORM = "rental_survey"
T0 = datetime(2026, 1, 20, 2, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=6)
T2 = T1 + timedelta(hours=6)
T3 = T2 + timedelta(hours=6)
PUBLIC_BASE = "https://cdn.example.org/odk/"

RAW_TABLES = {
    "submissions": """
        form_id text not null, submission_id text not null, instance_id text,
        submission_date timestamp with time zone, updated_at timestamp with time zone,
        deleted_at timestamp with time zone, is_deleted boolean, review_state text, submitter_id text,
        submitter_name text, device_id text, form_version text, edits bigint, status text,
        attachments_present bigint, attachments_expected bigint, data text,
        _loaded_at timestamp with time zone
    """,
    f"{FORM}__person_details": """
        form_id text not null, submission_id text not null, row_id text not null, parent_id text,
        parent_link text, data text, _is_tombstone boolean, _loaded_at timestamp with time zone
    """,
    "attachments": """
        form_id text not null, submission_id text not null, name text not null, field_name text,
        "exists" boolean, storage_key text, size_bytes bigint, sha256 text, content_type text,
        etag text, downloaded_at timestamp with time zone, _loaded_at timestamp with time zone
    """,
}
MART_COLUMNS = (
    "submission_id",
    "instance_id",
    "survey_date",
    "building_name",
    "address_plus_code",
    "rent_amount",
    "number_of_units",
    "landlord_phone",
    "review_state",
    "submitter_name",
    "edit_count",
    "person_count",
    "person_list",
    "building_image_key",
    "building_image_url",
    "building_image_url_html",
    "address_plus_code_url_html",
    "is_deleted",
    "source_loaded_at",
)


# --------------------------------------------------------------------------------------------------
# Raw rows as the loader lands them
# --------------------------------------------------------------------------------------------------


class Raw:
    """Writes raw_odk_central rows through the warehouse's own DB-API driver."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse
        with warehouse.connect() as conn:
            cur = conn.cursor()
            cur.execute("create schema if not exists raw_odk_central")
            for table, columns in RAW_TABLES.items():
                cur.execute(f"create table raw_odk_central.{table} ({columns})")

    def execute(self, sql: str, *rows: tuple[Any, ...]) -> None:
        sql = sql.replace("?", self.warehouse.paramstyle)
        with self.warehouse.connect() as conn:
            cur = conn.cursor()
            for row in rows or ((),):
                cur.execute(sql, row)

    def insert(self, table: str, **values: Any) -> None:
        columns = ", ".join(f'"{name}"' for name in values)
        marks = ", ".join("?" for _ in values)
        self.execute(
            f"insert into raw_odk_central.{table} ({columns}) values ({marks})", tuple(values.values())
        )

    def submission(
        self, submission_id: str, loaded_at: datetime, *, form_id: str = FORM, **fields: Any
    ) -> None:
        """Merge one submission (delete-insert on form_id, submission_id), as the loader does."""
        data = {
            "survey_date": "2026-01-19",
            "building_name": f"Building {submission_id[-1]}",
            "address": "12 Moi Avenue, Kilimani, Nairobi",
            "address_plus_code": "6GCRPR6C+24",
            "building_image": None,
            "rent_amount": 12500,
            "number_of_units": 8,
            "landlord_phone": "+254700000001",
        } | fields.pop("data", {})
        row = {
            "form_id": form_id,
            "submission_id": submission_id,
            "instance_id": fields.pop("instance_id", submission_id),
            "submission_date": T1 - timedelta(days=1),
            "updated_at": None,
            "deleted_at": None,
            "is_deleted": False,
            "review_state": "received",
            "submitter_id": "5",
            "submitter_name": "amina.otieno",
            "device_id": "collect:0a1b2c3d4e5f",
            "form_version": "2026011501",
            "edits": 0,
            "status": None,
            "attachments_present": 0,
            "attachments_expected": 0,
            "data": json.dumps(data),
            "_loaded_at": loaded_at,
        } | fields
        self.execute(
            "delete from raw_odk_central.submissions where form_id = ? and submission_id = ?",
            (form_id, submission_id),
        )
        self.insert("submissions", **row)

    def persons(self, submission_id: str, loaded_at: datetime, *people: tuple[str, int, str]) -> None:
        """Replace all of a submission's person rows (the repeat's merge key is the submission)."""
        self.execute(
            f"delete from raw_odk_central.{FORM}__person_details where submission_id = ?",
            (submission_id,),
        )
        for number, (name, age, sex) in enumerate(people):
            data = {"name": name, "age": age, "sex": sex, "relationship": "head", "occupation": "tailor"}
            self.insert(
                f"{FORM}__person_details",
                form_id=FORM,
                submission_id=submission_id,
                row_id=f"{submission_id}-p{number}-{loaded_at:%H}",
                parent_id=submission_id,
                parent_link="__Submissions-id",
                data=json.dumps(data),
                _is_tombstone=False,
                _loaded_at=loaded_at,
            )

    def attachment(
        self,
        submission_id: str,
        name: str,
        loaded_at: datetime,
        field_name: str | None = None,
        storage_key: str | None = None,
    ) -> None:
        """Merge one attachment's row (delete-insert on form_id, submission_id, name)."""
        self.execute(
            "delete from raw_odk_central.attachments where submission_id = ? and name = ?",
            (submission_id, name),
        )
        self.insert(
            "attachments",
            form_id=FORM,
            submission_id=submission_id,
            name=name,
            field_name=field_name,
            exists=True,
            storage_key=storage_key or f"7/{FORM}/{submission_id}/{name}",
            size_bytes=1234,
            sha256="ab" * 32,
            content_type="image/png",
            etag=f'"{loaded_at:%H}"',
            downloaded_at=loaded_at,
            _loaded_at=loaded_at,
        )


# --------------------------------------------------------------------------------------------------
# dbt and the mart
# --------------------------------------------------------------------------------------------------


def dbt_build(warehouse: Warehouse, tmp_path: Path, *args: str, candidate: bool = False) -> None:
    """``dbt build`` of the mart and everything upstream of it, as an analyst runs it; with
    ``candidate``, as a run does (``flows/publish.py``): the published mart cloned into its candidate
    schema, built there, then published. Fails the test with dbt's reasons."""
    from dbt.cli.main import dbtRunner

    from flows import publish

    arguments = list(args)
    if candidate:
        variables = {"candidate": True}
        if "--vars" in arguments:
            at = arguments.index("--vars")
            variables |= json.loads(arguments.pop(at + 1))
            arguments.pop(at)
        arguments += ["--vars", json.dumps(variables)]
        if "--full-refresh" not in arguments:
            assert publish.clone_incrementals(warehouse, [f"marts.{MART}"]) == (
                [f"marts.{MART}"] if warehouse.has_table("marts", MART) else []
            )
    result = dbtRunner().invoke(
        [
            "build",
            "--project-dir",
            str(ROOT),
            "--profiles-dir",
            str(ROOT / "profiles"),
            "--target",
            warehouse.target,
            "--target-path",
            str(tmp_path / ("dbt_candidate" if candidate else "dbt_target")),
            "--select",
            f"+{MART}",
            "--quiet",
            *arguments,
        ]
    )
    failures = [
        f"{node.node.name}: {node.message}"
        for node in result.result or []
        if str(node.status) in {"error", "fail", "runtime error"}
    ]
    assert result.success, failures or result.exception
    if candidate:
        publish.publish(warehouse)
        assert publish.candidate_schemas(warehouse) == []


def mart_rows(warehouse: Warehouse) -> dict[str, dict[str, Any]]:
    rows = warehouse.query(f"select {', '.join(MART_COLUMNS)} from marts.{MART}")
    return {row[0]: dict(zip(MART_COLUMNS, row, strict=True)) for row in rows}


class _Anchor(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text += data


def parse_link(html: str) -> tuple[str | None, str]:
    """The href and text of a lone ``<a href="...">text</a>``; asserts it is nothing else."""
    assert re.fullmatch(r'<a href="[^"<>]*">[^<>]*</a>', html), html
    parser = _Anchor()
    parser.feed(html)
    parser.close()
    assert [tag for tag, _ in parser.tags] == ["a"], html
    return parser.tags[0][1].get("href"), parser.text


def load_first_batch(raw: Raw) -> None:
    """Four rental surveys (one already deleted) and one survey of another form, loaded at T1 (s2 and
    s4 at T0, an earlier run)."""
    raw.submission("uuid:s1", T1, data={"building_image": "s1.png"}, attachments_present=1)
    raw.persons(
        "uuid:s1",
        T1,
        ("Zawadi Njeri", 7, "female"),
        ("Amina Otieno", 34, "female"),
        ("Peter Kamau", 36, "male"),
    )
    raw.attachment("uuid:s1", "s1.png", T1, field_name="building_image")
    # The loader did not know the field: the key comes from the file named in data.building_image.
    raw.submission("uuid:s2", T0, data={"building_image": "s2.jpg"}, attachments_present=1)
    raw.persons("uuid:s2", T0, ("Grace Wanjiru", 51, "female"))
    raw.attachment("uuid:s2", "s2.jpg", T0)
    raw.submission("uuid:s3", T1, is_deleted=True, deleted_at=T1 - timedelta(hours=1))
    raw.persons("uuid:s3", T1, ("Joseph Mwangi", 40, "male"))
    raw.submission("uuid:s4", T0, data={"address_plus_code": None, "rent_amount": 250.5})
    raw.submission("uuid:x1", T1, form_id="household_visits")


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("candidate", [False, True], ids=["dbt build", "candidate and publish"])
def test_unified_mart_follows_edits_and_deletions_incrementally(
    warehouse: Warehouse, tmp_path: Path, candidate: bool
) -> None:
    """As an analyst's ``dbt build`` and as a run builds it (cloned into its candidate, built
    incrementally there, published): the marker planted in a row no later load touches survives."""
    raw = Raw(warehouse)
    load_first_batch(raw)

    dbt_build(warehouse, tmp_path, candidate=candidate)

    rows = mart_rows(warehouse)
    assert sorted(rows) == ["uuid:s1", "uuid:s2", "uuid:s4"]
    s1 = rows["uuid:s1"]
    assert s1["person_count"] == 3
    assert s1["person_list"] == "Amina Otieno (34, female); Peter Kamau (36, male); Zawadi Njeri (7, female)"
    assert s1["building_image_key"] == "7/rental_survey/uuid:s1/s1.png"
    assert s1["survey_date"].isoformat() == "2026-01-19"
    assert (s1["rent_amount"], s1["number_of_units"]) == (12500, 8)
    assert rows["uuid:s2"]["person_list"] == "Grace Wanjiru (51, female)"
    assert rows["uuid:s2"]["building_image_key"] == "7/rental_survey/uuid:s2/s2.jpg"
    s4 = rows["uuid:s4"]
    assert (s4["person_count"], s4["person_list"], s4["building_image_key"]) == (0, None, None)
    assert s4["rent_amount"] == Decimal("250.5")
    assert s4["address_plus_code_url_html"] is None
    for row in rows.values():
        assert row["is_deleted"] is False
        assert row["building_image_url"] is None  # no public base configured
        assert row["building_image_url_html"] is None
    assert parse_link(s1["address_plus_code_url_html"]) == ("https://plus.codes/6GCRPR6C+24", "6GCRPR6C+24")

    # s2 and s4 were loaded before the latest load (T1), which each incremental run takes again (rows
    # loaded at or after the watermark): a marker in s4's row shows that the next runs leave it alone.
    warehouse.query(f"update marts.{MART} set landlord_phone = 'untouched' where submission_id = 'uuid:s4'")

    # An edit of s1 (new data, new person rows) and, alone, a re-downloaded file of s2, loaded at T2.
    raw.submission(
        "uuid:s1",
        T2,
        instance_id="uuid:s1-v2",
        updated_at=T2 - timedelta(minutes=5),
        review_state="edited",
        edits=1,
        data={"building_image": "s1.png", "rent_amount": 14000},
    )
    raw.persons("uuid:s1", T2, ("Amina Otieno", 34, "female"), ("Baraka Otieno", 2, "male"))
    raw.attachment("uuid:s2", "s2.jpg", T2, "building_image", "7/rental_survey/uuid:s2/s2-v2.jpg")

    dbt_build(warehouse, tmp_path, candidate=candidate)

    rows = mart_rows(warehouse)
    assert sorted(rows) == ["uuid:s1", "uuid:s2", "uuid:s4"]
    s1 = rows["uuid:s1"]
    assert (s1["instance_id"], s1["review_state"], s1["edit_count"]) == ("uuid:s1-v2", "edited", 1)
    assert s1["rent_amount"] == 14000
    assert (s1["person_count"], s1["person_list"]) == (
        2,
        "Amina Otieno (34, female); Baraka Otieno (2, male)",
    )
    assert s1["source_loaded_at"] == rows["uuid:s2"]["source_loaded_at"]  # both T2
    assert rows["uuid:s2"]["building_image_key"] == "7/rental_survey/uuid:s2/s2-v2.jpg"
    assert rows["uuid:s4"]["landlord_phone"] == "untouched"

    # s2 deleted in Central, loaded at T3.
    raw.submission("uuid:s2", T3, is_deleted=True, deleted_at=T3 - timedelta(minutes=1))

    dbt_build(warehouse, tmp_path, candidate=candidate)

    incremental = mart_rows(warehouse)
    assert sorted(incremental) == ["uuid:s1", "uuid:s4"]
    assert incremental["uuid:s1"] == rows["uuid:s1"]
    assert incremental["uuid:s4"]["landlord_phone"] == "untouched"

    warehouse.query(
        f"update marts.{MART} set landlord_phone = '+254700000001' where submission_id = 'uuid:s4'"
    )
    incremental = mart_rows(warehouse)

    dbt_build(warehouse, tmp_path, "--full-refresh", candidate=candidate)

    assert mart_rows(warehouse) == incremental


def test_image_links_follow_the_public_base_url(warehouse: Warehouse, tmp_path: Path) -> None:
    raw = Raw(warehouse)
    load_first_batch(raw)
    raw.submission("uuid:s5", T2)  # a later load: s1 and s2 are behind the watermark from now on

    dbt_build(warehouse, tmp_path, "--vars", json.dumps({"attachments_public_base_url": PUBLIC_BASE}))

    rows = mart_rows(warehouse)
    for submission_id in ("uuid:s1", "uuid:s2"):
        row = rows[submission_id]
        assert row["building_image_url"] == PUBLIC_BASE + row["building_image_key"]
        assert parse_link(row["building_image_url_html"]) == (row["building_image_url"], "View image")
    assert rows["uuid:s4"]["building_image_url"] is None
    assert rows["uuid:s4"]["building_image_url_html"] is None

    # Unsetting the base is picked up by the next incremental run, though no raw row changed.
    dbt_build(warehouse, tmp_path)

    assert all(row["building_image_url"] is None for row in mart_rows(warehouse).values())
