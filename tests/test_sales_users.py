"""The users CSV loader: normalised, unique, roles checked, no plain-text password stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import PasswordHasher

from loaders.common.quarantine import REJECTED_SCHEMA, LoadStats
from loaders.common.warehouse import ConfigurationError, Warehouse
from loaders.sales import existing_user_emails, sales_users
from tests.sales_fixtures import load

PASSWORDS = [
    "Plain-Text-Secret-1",
    "Plain-Text-Secret-2",
    "Plain-Text-Secret-3",
    "Plain-Text-Secret-4",
]


def write_users(folder: Path, rows: list[tuple[str, str, str, str]], name: str = "users.csv") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["username,email,role,initial_password"] + [",".join(row) for row in rows]
    (folder / name).write_text("\n".join(lines) + "\n")


def run_users(folder: Path, warehouse: Warehouse) -> LoadStats:
    stats = LoadStats()
    source = sales_users(
        users_path=str(folder),
        roles=["admin", "manager", "sales_rep", "analyst"],
        existing=existing_user_emails(warehouse),
        stats=stats,
    )
    load(source, "sales_users", warehouse)
    return stats


def all_text(warehouse: Warehouse) -> str:
    """Every value of every table the warehouse holds, as one string."""
    tables = warehouse.query(
        "select table_schema, table_name from information_schema.tables "
        "where table_schema not in ('information_schema', 'pg_catalog')"
    )
    chunks = []
    for schema, table in tables:
        for row in warehouse.query(f'select * from "{schema}"."{table}"'):
            chunks.append(" ".join(str(value) for value in row))
    return "\n".join(chunks)


def test_users_are_normalised_checked_and_never_store_a_plain_password(
    warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the other tests hash with argon2-cffi's CHEAPEST profile (tests/conftest.py); this one, as deployed
    monkeypatch.delenv("SOURCES__SALES_USERS__ARGON2_PROFILE")
    write_users(
        tmp_path / "users",
        [
            ("  Amina.Otieno ", "Amina@Example.ORG ", "Sales_Rep", PASSWORDS[0]),
            ("brian", "brian@example.org", "superuser", PASSWORDS[1]),  # unknown role
            ("AMINA.OTIENO", "other@example.org", "analyst", PASSWORDS[2]),  # duplicate username
            ("chloe", "AMINA@example.org", "analyst", PASSWORDS[3]),  # duplicate email
            ("david", "david@example.org", "manager", ""),
        ],
    )

    stats = run_users(tmp_path / "users", warehouse)

    assert (stats.read, stats.loaded, stats.rejected) == (5, 2, 3)
    users = warehouse.query(
        "select username, email, role, password_hash from raw_sales.users order by username"
    )
    assert [row[:3] for row in users] == [
        ("amina.otieno", "amina@example.org", "sales_rep"),
        ("david", "david@example.org", "manager"),
    ]
    assert users[0][3].startswith("$argon2id$v=19$m=65536,t=3,p=4$")  # RFC 9106's low-memory profile
    assert PasswordHasher().verify(users[0][3], PASSWORDS[0])
    assert users[1][3] is None
    reasons = [r for (r,) in warehouse.query("select reason from raw_sales.rejected_rows")]
    assert any("role is not one of" in r for r in reasons)
    assert any(r.startswith("duplicate username: ") and r.endswith(".csv:2 has it") for r in reasons)
    assert any("email already belongs to another user" in r for r in reasons)
    # the quarantine has its own columns, none inherited from the users resource (password_hash)
    columns = {
        name
        for (name,) in warehouse.query(
            "select column_name from information_schema.columns "
            "where table_schema = 'raw_sales' and table_name = 'rejected_rows'"
        )
        if not name.startswith("_dlt")
    }
    assert columns == set(REJECTED_SCHEMA.names)
    everything = all_text(warehouse)
    for password in PASSWORDS:
        assert password not in everything


def test_an_unknown_argon2_profile_is_a_setting_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="argon2_profile 'fast'.*RFC_9106_LOW_MEMORY"):
        sales_users(users_path=str(tmp_path), roles=["analyst"], argon2_profile="fast")


def test_an_email_taken_by_an_earlier_import_is_rejected(warehouse: Warehouse, tmp_path: Path) -> None:
    write_users(tmp_path / "users", [("amina", "amina@example.org", "analyst", "")], "a.csv")
    run_users(tmp_path / "users", warehouse)
    write_users(tmp_path / "users", [("other", "amina@example.org", "analyst", "")], "b.csv")

    stats = run_users(tmp_path / "users", warehouse)

    assert (stats.read, stats.loaded, stats.rejected) == (1, 0, 1)
    assert warehouse.query("select username from raw_sales.users") == [("amina",)]
