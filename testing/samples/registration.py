"""A sample registration database for the demo, the tests and the benchmark.

Built from the IEBC 2022 ward file (``seeds/registration/kenya_iebc_2022_wards.csv``, the reference the
warehouse also holds): counties, constituencies and wards with the official figures, and generated polling
stations (at most ~480 voters each, about 46,000 in all) whose figures add up exactly to their ward's.
Codes are stored as integers, as other copies of this data have them; the loader zero-pads them.

``plant_faults`` then breaks it the way production data was broken, for reconciliation to find:
a constituency at 0, a ward missing, a ward whose figure differs from the official one.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from loaders.common.sqlsource import sqlalchemy_url
from loaders.common.warehouse import ROOT

WARDS_CSV = ROOT / "seeds" / "registration" / "kenya_iebc_2022_wards.csv"
VOTERS_PER_STATION = 480
BUILT_AT = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
FAULTS_AT = datetime(2026, 1, 16, 8, 0, tzinfo=UTC)
# The planted faults (codes as the reference writes them).
ZERO_CONSTITUENCY = "280"  # KASARANI, Nairobi: the "0 registered voters" of the old incident
MISSING_WARD = "0005"  # CHAANI, Changamwe
MISMATCHED_WARD = "0289"  # KIBIRICHIA, Buuri (a ward outside its code range: a trap for prefix rollups)
MISMATCH_DELTA = 1000


@dataclass(frozen=True)
class Faults:
    zero_constituency: str = ZERO_CONSTITUENCY
    missing_ward: str = MISSING_WARD
    mismatched_ward: str = MISMATCHED_WARD
    mismatch_delta: int = MISMATCH_DELTA


def read_wards(path: Path = WARDS_CSV) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def polling_stations(wards: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Generated stations: ``ceil(voters / 480)`` per ward, figures split as evenly as whole numbers allow.
    Codes follow the IEBC pattern county(3) constituency(3) ward(4) centre(3) station(2)."""
    stations = []
    for ward in wards:
        voters = int(ward["registered_voters_2022"])
        count = max(1, math.ceil(voters / VOTERS_PER_STATION))
        base, extra = divmod(voters, count)
        for index in range(count):
            centre, station = divmod(index, 3)
            area = f"{ward['county_code']}{ward['constituency_code']}{ward['ward_code']}"
            code = f"{area}{centre + 1:03d}{station + 1:02d}"
            stations.append(
                {
                    "code": int(code),
                    "ward_code": int(ward["ward_code"]),
                    "name": f"{ward['ward_name']} POLLING CENTRE {centre + 1} STREAM {station + 1}",
                    "registered_voters_2022": base + (1 if index < extra else 0),
                }
            )
    return stations


def build_source_database(
    url: str, wards_csv: Path = WARDS_CSV, counties: set[str] | None = None
) -> dict[str, int]:
    """Create (or replace) the four level tables at the SQLAlchemy ``url`` and fill them; returns counts and
    the wards' total (22,102,532 with the official file). ``counties`` (codes) keeps only those counties,
    for small test databases."""
    wards = [ward for ward in read_wards(wards_csv) if counties is None or ward["county_code"] in counties]
    counties: dict[str, dict[str, Any]] = {}
    constituencies: dict[str, dict[str, Any]] = {}
    for ward in wards:
        voters = int(ward["registered_voters_2022"])
        county = counties.setdefault(
            ward["county_code"],
            {"code": int(ward["county_code"]), "name": ward["county_name"], "registered_voters_2022": 0},
        )
        county["registered_voters_2022"] += voters
        constituency = constituencies.setdefault(
            ward["constituency_code"],
            {
                "code": int(ward["constituency_code"]),
                "county_code": int(ward["county_code"]),
                "name": ward["constituency_name"],
                "registered_voters_2022": 0,
            },
        )
        constituency["registered_voters_2022"] += voters
    ward_rows = [
        {
            "code": int(ward["ward_code"]),
            "constituency_code": int(ward["constituency_code"]),
            "name": ward["ward_name"],
            "registered_voters_2022": int(ward["registered_voters_2022"]),
        }
        for ward in wards
    ]
    stations = polling_stations(wards)
    engine = sa.create_engine(sqlalchemy_url(url))
    metadata = sa.MetaData()
    tables = {
        name: _level_table(metadata, name, parent, code_type, updated)
        for name, parent, code_type, updated in (
            ("counties", None, sa.Integer, True),
            ("constituencies", "county_code", sa.Integer, True),
            ("wards", "constituency_code", sa.Integer, True),
            # no updated_at: the loader reads it whole and loads only the rows that changed
            ("polling_stations", "ward_code", sa.BigInteger, False),
        )
    }
    stamp = {"updated_at": BUILT_AT.replace(tzinfo=None)}
    with engine.begin() as conn:
        metadata.drop_all(conn)
        metadata.create_all(conn)
        conn.execute(tables["counties"].insert(), [{**row, **stamp} for row in counties.values()])
        conn.execute(tables["constituencies"].insert(), [{**row, **stamp} for row in constituencies.values()])
        conn.execute(tables["wards"].insert(), [{**row, **stamp} for row in ward_rows])
        conn.execute(tables["polling_stations"].insert(), stations)
    engine.dispose()
    return {
        "counties": len(counties),
        "constituencies": len(constituencies),
        "wards": len(ward_rows),
        "polling_stations": len(stations),
        "ward_total": sum(row["registered_voters_2022"] for row in ward_rows),
        "station_total": sum(row["registered_voters_2022"] for row in stations),
    }


def plant_faults(url: str, faults: Faults = Faults(), at: datetime | None = None) -> None:
    """A constituency at 0, a ward deleted (its polling stations stay), a ward off by ``mismatch_delta``."""
    stamp = (at or datetime.now(UTC)).replace(tzinfo=None)
    engine = sa.create_engine(sqlalchemy_url(url))
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "update constituencies set registered_voters_2022 = 0, updated_at = :at where code = :code"
            ),
            {"at": stamp, "code": int(faults.zero_constituency)},
        )
        conn.execute(sa.text("delete from wards where code = :code"), {"code": int(faults.missing_ward)})
        conn.execute(
            sa.text(
                "update wards set registered_voters_2022 = registered_voters_2022 + :delta, updated_at = :at "
                "where code = :code"
            ),
            {"delta": faults.mismatch_delta, "at": stamp, "code": int(faults.mismatched_ward)},
        )
    engine.dispose()


def _level_table(
    metadata: sa.MetaData, name: str, parent: str | None, code_type: Any, updated: bool
) -> sa.Table:
    """One level's table: integer code (as other copies of this data have it), parent code, name, figure."""
    columns = [sa.Column("code", code_type, primary_key=True)]
    if parent:
        columns.append(sa.Column(parent, sa.Integer))
    columns += [sa.Column("name", sa.Text), sa.Column("registered_voters_2022", sa.BigInteger)]
    if updated:
        columns.append(sa.Column("updated_at", sa.DateTime))
    return sa.Table(name, metadata, *columns)
