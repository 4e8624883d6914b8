"""The ``elt`` command line: help everywhere, clear one-line errors, status output."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.report import DEMO_TABLES
from loaders.common.warehouse import Warehouse

runner = CliRunner()


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["run"],
        ["demo"],
        ["status"],
        ["health"],
        ["report"],
        ["cleanup"],
        ["reconcile"],
        ["coverage"],
        ["backup"],
        ["restore"],
    ],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])

    assert result.exit_code == 0
    assert "Usage" in result.output


def test_an_unknown_source_is_a_one_line_error(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELT_DUCKDB_PATH", str(tmp_path / "w.duckdb"))

    result = runner.invoke(app, ["run", "--source", "nope", "--target", "duckdb"])

    assert result.exit_code == 2
    assert "unknown source 'nope'" in result.output


def test_an_unknown_target_is_a_one_line_error() -> None:
    result = runner.invoke(app, ["status", "--target", "oracle"])

    assert result.exit_code == 2
    assert "unknown target 'oracle'" in result.output


def test_status_before_any_run_says_what_to_do(warehouse: Warehouse) -> None:
    result = runner.invoke(app, ["status", "--target", warehouse.target])

    assert result.exit_code == 2  # cannot check: neither healthy (0) nor unhealthy (1)
    assert "run `elt run`" in result.output


def test_a_wrong_postgres_password_does_not_leak(pg_server, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in pg_server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ELT_PG_PASSWORD", "not-the-password-xyz")

    result = runner.invoke(app, ["status", "--target", "postgres"])

    assert result.exit_code == 2
    assert "cannot connect" in result.output
    assert "not-the-password-xyz" not in result.output


def test_demo_twice_loads_nothing_new(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELT_DUCKDB_PATH", str(tmp_path / "demo.duckdb"))
    args = ["demo", "--samples", str(tmp_path / "samples")]

    first = runner.invoke(app, args)
    second = runner.invoke(app, args)

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert "Run on duckdb: success" in second.output
    assert "files loaded 0, unchanged 3" in second.output
    changes = [line.split()[-1] for line in second.output.splitlines() if line.startswith(DEMO_TABLES)]
    assert len(changes) == len(DEMO_TABLES) and set(changes) == {"+0"}
    odk = next(line for line in second.output.splitlines() if line.startswith("odk_central "))
    assert odk.split()[2:5] == ["0", "0", "0"]  # read, loaded, rejected
    assert "0 attachments downloaded" in odk
    registration = next(line for line in second.output.splitlines() if line.startswith("registration "))
    assert registration.split()[3] == "0"  # loaded
    # the planted faults, exactly
    assert "Registration: 3 of 1787 areas do not reconcile" in second.output
    assert "22,102,532 registered voters" in second.output
    # the second coverage preview and apply find nothing to change
    assert second.output.count("municipality  0        0        0") == 2
