"""Property-based: CSV files of random good and bad rows, on DuckDB. Whatever they hold, every record
read is loaded or quarantined (counted from the tables), and no generated password is stored anywhere."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loaders.common.quarantine import LoadStats
from loaders.common.warehouse import Warehouse
from loaders.sales import sales_csv, sales_users
from testing.samples.sales import HEADER
from tests.sales_fixtures import load

SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# Text that CSV and the checks find awkward: delimiters, quotes, line breaks, spaces, non-ASCII.
AWKWARD = st.one_of(
    st.text(alphabet=st.sampled_from(list("ab9 ,;\"'\n\r\t-.é€0")), max_size=12),
    st.sampled_from(["", "NULL", "-1", "1e3", "0"]),
)
GOOD = {
    "order_id": st.from_regex(r"G-[0-9]{1,4}", fullmatch=True),
    "date": st.dates().map(lambda day: day.isoformat()),
    "user_id": st.sampled_from(["amina.otieno1", "brian.santos2"]),
    "product_name": st.sampled_from(["Widget", "Gadget", "Gizmo"]),
    "quantity": st.integers(1, 50).map(str),
    "unit_price": st.sampled_from(["4.50", "12.00", "0.99"]),
}


@st.composite
def order_row(draw: st.DrawFn) -> list[str]:
    row = [draw(GOOD[name]) for name in HEADER[:6]]
    row.append(f"{int(row[4]) * float(row[5]):.2f}")  # total_amount
    row.append(draw(st.sampled_from(["North", "South"])))
    for index in draw(st.sets(st.integers(0, 7), max_size=3)):  # spoil some fields
        row[index] = draw(AWKWARD)
    cut = draw(st.sampled_from([None, None, None, -1, 1]))  # sometimes a field too few or too many
    if cut == -1:
        row = row[:-1]
    elif cut == 1:
        row = [*row, draw(AWKWARD)]
    return row


def _write(rows: list[list[str]], header: tuple[str, ...] | list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _count(warehouse: Warehouse, table: str) -> int:
    try:
        return int(warehouse.query(f"select count(*) from raw_sales.{table}")[0][0])
    except Exception:  # never created: nothing of that kind
        return 0


@SETTINGS
@given(files=st.lists(st.lists(order_row(), max_size=15), min_size=1, max_size=3))
def test_random_order_files_lose_no_record(files: list[list[list[str]]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for number, rows in enumerate(files):
            (root / "shop").mkdir(exist_ok=True)
            (root / "shop" / f"f{number}.csv").write_text(_write(rows, HEADER), encoding="utf-8")
        warehouse = Warehouse(target="duckdb", duckdb_path=root / "w.duckdb")
        stats = LoadStats()
        source = sales_csv(file_sources=[{"name": "shop", "path": str(root / "shop")}], stats=stats)

        load(source, "sales_csv", warehouse)

        assert stats.read == _count(warehouse, "orders") + _count(warehouse, "rejected_rows")
        assert (stats.loaded, stats.rejected) == (
            _count(warehouse, "orders"),
            _count(warehouse, "rejected_rows"),
        )


PASSWORD = st.text(alphabet=st.sampled_from(list("Ab9,;\"' -_!é")), min_size=6, max_size=14).map(
    lambda text: f"PW#{text}"
)


@st.composite
def user_line(draw: st.DrawFn) -> str:
    """A line as a careless export writes it: sometimes quoted, sometimes not, sometimes a field short."""
    index = draw(st.integers(0, 999))
    fields = [
        draw(st.sampled_from([f"user.{index}", "", "Bad Name!"])),
        draw(st.sampled_from([f"user.{index}@example.org", "not-an-email", ""])),
        draw(st.sampled_from(["analyst", "manager", "janitor", ""])),
        draw(PASSWORD),
    ]
    if draw(st.booleans()):
        del fields[draw(st.integers(0, 2))]  # a field missing: the password moves left
    if draw(st.booleans()):
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="").writerow(fields)
        return buffer.getvalue()
    return ",".join(fields)  # unquoted: a comma in the password splits it


@SETTINGS
@given(lines=st.lists(user_line(), min_size=1, max_size=12))
def test_random_users_files_store_no_password(lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "users").mkdir()
        text = "username,email,role,initial_password\n" + "\n".join(lines) + "\n"
        (root / "users" / "users.csv").write_text(text, encoding="utf-8")
        warehouse = Warehouse(target="duckdb", duckdb_path=root / "w.duckdb")
        stats = LoadStats()
        source = sales_users(users_path=str(root / "users"), roles=["analyst", "manager"], stats=stats)

        load(source, "sales_users", warehouse)

        assert stats.read == _count(warehouse, "users") + _count(warehouse, "rejected_rows")
        passwords = {piece for line in lines for piece in line.split('"') if piece.startswith("PW#")}
        passwords |= {piece for line in lines for piece in line.split(",") if piece.startswith("PW#")}
        stored = [
            str(value)
            for schema, table, column in warehouse.query(
                "select table_schema, table_name, column_name from information_schema.columns "
                "where table_schema like 'raw_sales%' and data_type = 'VARCHAR'"
            )
            for (value,) in warehouse.query(f'select "{column}" from {schema}."{table}"')
            if value is not None
        ]
        assert not [secret for secret in passwords for value in stored if secret in value or "PW#" in value]
