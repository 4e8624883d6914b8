"""Alerts reach a webhook on loopback (an Apprise ``json://`` destination, as ``elt health --notify`` and
cron use without a Prefect server): a failed run and an unhealthy check arrive once, naming the sync
type and the error and no secret; a second failing check within the quiet period sends nothing; a
recovery sends one message. Both targets."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from flows.cli import app
from loaders.common.warehouse import Warehouse
from tests.test_status import build_status_views, plant

runner = CliRunner()
API_KEY = "sk-live-0123456789-alert-test"


class Receiver:
    """A webhook on 127.0.0.1 that keeps the JSON bodies it is sent."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                received.append(json.loads(self.rfile.read(length) or b"{}"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self) -> list[str]:
        """The messages received since the last call, as "title: body"."""
        found = [f"{body.get('title')}: {body.get('message')}" for body in self.received]
        self.received.clear()
        return found


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    found = Receiver()
    monkeypatch.setenv("ALERTS__URLS", json.dumps([found.url]))
    try:
        yield found
    finally:
        found.server.shutdown()


def health(warehouse: Warehouse) -> int:
    result = runner.invoke(app, ["health", "--notify", "--no-freshness", "--target", warehouse.target])
    return result.exit_code


def test_an_unhealthy_check_alerts_once_and_its_recovery_once(
    warehouse: Warehouse, receiver: Receiver
) -> None:
    plant(warehouse, "sales_csv", "success", 3)
    plant(warehouse, "sales_csv", "error", 1, error_message="ValueError: the export has no header")
    build_status_views(warehouse)

    assert health(warehouse) == 1
    (message,) = receiver.take()
    assert "sync sales_csv failing" in message and "last attempt error" in message
    assert warehouse.describe() in message and "since" in message

    assert health(warehouse) == 1  # still failing: nothing new
    assert receiver.take() == []

    plant(warehouse, "sales_csv", "success", 0.5)
    assert health(warehouse) == 0
    (recovered,) = receiver.take()
    assert "sync sales_csv recovered" in recovered

    plant(warehouse, "sales_csv", "error", 0.1, error_message="ValueError: again")  # within the quiet period
    assert health(warehouse) == 1
    assert receiver.take() == []


def test_a_failed_run_alerts_once_without_secrets(
    warehouse: Warehouse, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.pipeline import run

    monkeypatch.setenv("SOURCES__SALES_API__API_KEY", API_KEY)
    monkeypatch.setenv("SOURCES__SALES_API__BASE_URL", "http://127.0.0.1:9/api/v1")  # nothing listens
    monkeypatch.setenv("SOURCES__SALES_API__MAX_ATTEMPTS", "1")
    monkeypatch.setenv("ELT_LOAD_RETRIES", "0")

    first = run(sources=["sales_api"], target=warehouse.target)
    second = run(sources=["sales_api"], target=warehouse.target)

    assert first.failed == second.failed == ["sales_api"]
    (message,) = receiver.take()
    assert "sync sales_api failing" in message and "Connection refused" in message
    secrets = [API_KEY, *([warehouse.pg_password] if warehouse.target == "postgres" else [])]
    assert not [secret for secret in secrets if secret in message]


def test_a_prefect_notification_block_delivers(
    warehouse: Warehouse, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The destination is a block kept in Prefect and named in [alerts] blocks: a custom webhook to the
    same receiver (what a Slack, Teams or e-mail block would be in production)."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    found = Receiver()
    try:
        CustomWebhookNotificationBlock(
            name="elt-alerts",
            url=found.url.replace("json://", "http://"),
            json_data={"title": "{{subject}}", "message": "{{body}}"},
            allow_private_urls=True,  # loopback here; a real destination is public
        ).save("elt-test-webhook", overwrite=True)
        monkeypatch.setenv("ALERTS__BLOCKS", json.dumps(["custom-webhook/elt-test-webhook"]))
        plant(warehouse, "sales_users", "error", 1, error_message="UnicodeDecodeError: byte 0xff")
        build_status_views(warehouse)

        assert health(warehouse) == 1
        (message,) = found.take()
        assert "sync sales_users failing" in message and "UnicodeDecodeError" in message
    finally:
        found.server.shutdown()


def test_an_abandoned_attempt_is_announced_once(
    warehouse: Warehouse, receiver: Receiver, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that finds attempts of a run that died marks them abandoned and says so, once."""
    from flows.pipeline import run

    # a sales folder with no file yet: the runs succeed, and only the abandoned attempt is news
    monkeypatch.setenv(
        "SOURCES__SALES_CSV__FILE_SOURCES", json.dumps([{"name": "shop", "path": str(tmp_path)}])
    )
    plant(warehouse, "registration", "running", 2)  # its process died without finishing

    first = run(sources=["sales_csv"], target=warehouse.target)
    second = run(sources=["sales_csv"], target=warehouse.target)

    assert (first.abandoned, second.abandoned) == (1, 0)
    assert first.success and second.success, first.steps
    (message,) = receiver.take()
    assert message.startswith(f"elt: 1 abandoned attempts on {warehouse.describe()}: ")
