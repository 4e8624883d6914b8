"""Users CSV files that try to put a password in the warehouse, on both targets: whatever the file
looks like, no plain password (nor a piece of one, nor its lower-cased form) is stored anywhere, in
any table, view or column; the good rows load with their hash, the bad ones are quarantined."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from flows.pipeline import run
from loaders.common.warehouse import Warehouse
from tests.sales_fixtures import GOOD_ROWS, write_csv

HEADER = "username,email,role,initial_password"
# Every password of the fixtures: the scan looks for each, its lower-cased form and its pieces.
PASSWORDS = {
    "missing_field": "Shifted-Into-Role-7731",
    "split_left": "LeftHalfSecret",
    "split_right": "RightHalfSecret",
    "bad_role": "BadRolePassw0rd!",
    "quoted_comma": "Quoted,Comma-Pass",
    "cased_header": "CasedHeaderPass-55",
    "newline": "Line\nBreak-Pass",
    "sql": "x'); drop table raw_sales.users; --",
    "bom": "ByteOrderMark-Pass",
    "dup_header": "DupHeader-Secret-1",
    "unknown_column": "UnknownColumn-Pass",
}


def _write(folder: Path, name: str, content: str | bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    (folder / name).write_bytes(data)


@pytest.fixture
def users_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "users"
    p = PASSWORDS
    _write(
        folder,
        "a_mixed.csv",
        "\n".join(
            [
                HEADER,
                "good.one,good.one@example.org,analyst,",  # no password: allowed, no hash
                f"shifted.user,shifted@example.org,{p['missing_field']}",  # role missing: 3 fields
                f"split.user,split@example.org,analyst,{p['split_left']},{p['split_right']}",  # comma
                f"bad.role,bad.role@example.org,janitor,{p['bad_role']}",
                f'quoted.user,quoted@example.org,analyst,"{p["quoted_comma"]}"',
                f'newline.user,newline@example.org,analyst,"{p["newline"]}"',
                f'sql.user,sql@example.org,analyst,"{p["sql"]}"',
                "",
            ]
        ),
    )
    _write(
        folder,
        "b_cased.csv",
        " User_Name ,E-mail,ROLE,Initial_Password\n"
        f"cased.user,cased@example.org,manager,{p['cased_header']}\n",
    )
    _write(
        folder,
        "c_bom.csv",
        codecs.BOM_UTF8 + f"{HEADER}\nbom.user,bom@example.org,analyst,{p['bom']}\n".encode(),
    )
    _write(
        folder,
        "d_dup_header.csv",
        f"username,email,Email,role,initial_password\ndup.user,d@example.org,x,analyst,{p['dup_header']}\n",
    )
    _write(folder, "e_empty.csv", b"")
    _write(
        folder,
        "f_unknown_column.csv",
        f"username,email,role,initial_password,team\nunknown.user,u@example.org,analyst,"
        f"{p['unknown_column']},north\n",
    )
    return folder


def _text_values(warehouse: Warehouse) -> list[tuple[str, str]]:
    """(where, value) of every text value of every table and view of the warehouse."""
    columns = warehouse.query(
        "select table_schema, table_name, column_name from information_schema.columns "
        "where table_schema not in ('information_schema', 'pg_catalog', 'main') "
        "and lower(data_type) in ('text', 'character varying', 'varchar', 'json', 'jsonb')"
    )
    values = []
    for schema, table, column in columns:
        for (value,) in warehouse.query(f'select "{column}" from {schema}."{table}"'):
            if value is not None:
                values.append((f"{schema}.{table}.{column}", str(value)))
    return values


def test_no_password_reaches_the_warehouse_whatever_the_file(
    warehouse: Warehouse, users_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__SALES_USERS__USERS_PATH", str(users_folder))
    # orders too, so that dbt builds the sales marts (dim_users among them) for the scan
    write_csv(users_folder.parent / "shop" / "orders.csv", GOOD_ROWS)
    orders = json.dumps([{"name": "shop", "path": str(users_folder.parent / "shop")}])
    monkeypatch.setenv("SOURCES__SALES_CSV__FILE_SOURCES", orders)

    summary = run(sources=["sales_csv", "sales_users"], target=warehouse.target)

    assert summary.success, [(step.name, step.error) for step in summary.steps]
    loaded = dict(warehouse.query("select username, password_hash from raw_sales.users"))
    assert set(loaded) == {
        "good.one",
        "quoted.user",
        "newline.user",
        "sql.user",
        "cased.user",
        "bom.user",
        "unknown.user",
    }
    hasher = PasswordHasher()
    assert loaded["good.one"] is None
    for user, key in [
        ("quoted.user", "quoted_comma"),  # the whole password, comma included
        ("newline.user", "newline"),
        ("sql.user", "sql"),
        ("cased.user", "cased_header"),  # Initial_Password is the password column
        ("bom.user", "bom"),
        ("unknown.user", "unknown_column"),
    ]:
        assert hasher.verify(loaded[user], PASSWORDS[key])
    rejected = warehouse.query("select source_locator, reason from raw_sales.rejected_rows order by 1")
    reasons = dict(rejected)
    assert "3 fields where the header has 4" in reasons["a_mixed.csv:3"]
    assert "5 fields where the header has 4" in reasons["a_mixed.csv:4"]
    assert reasons["a_mixed.csv:5"].startswith("role is not one of")
    assert "the header names email twice" in reasons["d_dup_header.csv"]
    assert "the file is empty" in reasons["e_empty.csv"]
    step = next(step for step in summary.steps if step.name == "sales_users")
    assert step.read == len(loaded) + len(rejected)

    secrets = set()
    for password in PASSWORDS.values():
        secrets |= {password, password.lower(), *[piece for piece in password.split(",") if len(piece) > 4]}
    found = [
        (where, secret) for where, value in _text_values(warehouse) for secret in secrets if secret in value
    ]
    assert found == []
    # the scan reads what it should: the marts and the quarantine are in it
    places = {where for where, _ in _text_values(warehouse)}
    assert "marts.dim_users.username" in places and "raw_sales.rejected_rows.raw_record" in places
