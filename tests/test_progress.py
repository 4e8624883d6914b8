"""Progress of a load: bars on a terminal (dlt's rows, files and jobs; the loaders' files, OData pages
and attachment downloads), nothing when ``elt`` is not attached to one (a worker, cron, CI)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
from pathlib import Path

import pytest

from tests.operations import ELT, elt, elt_env
from tests.sample_sources import sample_sources

SOURCES = ["--source", "sales_csv", "--source", "odk_central", "--target", "duckdb"]


def on_a_terminal(args: list[str], env: dict[str, str], timeout: float = 300) -> tuple[int, str]:
    """``elt ARGS`` with a pseudo-terminal of 120 x 40 as its standard streams: (exit status, output)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen([ELT, *args], stdin=follower, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    output = b""
    while True:
        ready, _, _ = select.select([leader], [], [], timeout)
        if not ready:
            process.kill()
            pytest.fail(f"elt {' '.join(args)} printed nothing for {timeout} s")
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    return process.wait(timeout=60), output.decode("utf-8", "replace")


@pytest.fixture
def env(tmp_path: Path):
    with sample_sources(tmp_path, submissions=30) as sources:
        yield elt_env(sources.env, ELT_DUCKDB_PATH=str(tmp_path / "w.duckdb"), ELT_TARGET="duckdb")


def test_a_load_on_a_terminal_shows_its_progress(env: dict[str, str]) -> None:
    code, output = on_a_terminal(["run", *SOURCES], env | {"ELT_PROGRESS_AFTER_SECONDS": "0"})

    assert code == 0, output
    for shown in ("Extract sales_csv", "orders:", "files:", "Extract odk_central", "pages:", "downloads:"):
        assert shown in output, f"{shown!r} not shown:\n{output[-3000:]}"
    assert "Load sales_csv" in output  # dlt's own stages too
    assert output.rstrip().splitlines()[-1].startswith("Dashboard:")  # the summary still ends the output


def test_a_load_off_a_terminal_prints_no_progress(env: dict[str, str]) -> None:
    code, out, err = elt(["run", *SOURCES], env | {"ELT_PROGRESS_AFTER_SECONDS": "0"})

    assert code == 0, out + err
    assert "Run on duckdb: success" in out
    assert "it/s" not in out + err and "Extract" not in out + err


def test_progress_as_log_lines_when_asked(env: dict[str, str]) -> None:
    code, out, err = elt(["run", *SOURCES], env | {"ELT_PROGRESS": "log", "ELT_PROGRESS_AFTER_SECONDS": "1"})

    assert code == 0, out + err
    assert "Extract odk_central" in err and "pages: " in err and "downloads: " in err


def test_a_wrong_progress_setting_is_a_one_line_error(env: dict[str, str]) -> None:
    code, out, err = elt(["run", *SOURCES], env | {"ELT_PROGRESS": "fancy"})

    assert code == 2
    assert err.strip() == "elt: ELT_PROGRESS must be one of auto, tqdm, log, off, not 'fancy'"
