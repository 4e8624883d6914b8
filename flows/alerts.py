"""Alerts: a failed run, an abandoned attempt and an unhealthy check reach the configured destinations
once, and their recovery once.

Destinations are configuration (``[alerts]`` in ``.dlt/config.toml``, secrets in ``.dlt/secrets.toml``
or the environment):

- ``blocks``: Prefect notification blocks as ``<block type>/<name>`` (``slack-webhook/ops``,
  ``ms-teams-webhook/data``, ``email-server-credentials``-backed e-mail, ``custom-webhook/pager``,
  ``apprise``-style URLs...), which live in Prefect with their secrets; loading them needs the Prefect
  API;
- ``urls``: Apprise URLs (``ALERTS__URLS='["json://host/path"]'``), a secret, for use without a
  Prefect server (``elt health --notify``, cron).

Each condition has a key (``sync sales_api``, ``freshness sales.orders``, ``sales yesterday``): a run's
steps and the health check's checks feed the same keys. ``audit.alert_states`` keeps, per key, whether
it is failing, since when, and when its failure was last announced. A key that starts failing is
announced, unless its last announcement is less than ``alerts.quiet_hours`` (24) old (a flapping
check alerts once); a failing key is not announced again while it stays failing; a key whose failure
was announced and that passes again is announced as recovered. An abandoned attempt (a run killed) is
announced when the next run finds it. Messages say what, where and since when, redacted of secrets; a
destination that fails is logged and never fails the run or the check.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flows.status import as_utc
from loaders.common.warehouse import Warehouse, redact

logger = logging.getLogger(__name__)

STATES_DDL = """
create table if not exists audit.alert_states (
    alert_key varchar(256) primary key,
    is_failing boolean not null,
    since timestamp with time zone not null,
    notified_at timestamp with time zone,
    detail text
)
"""


@dataclass(frozen=True)
class Condition:
    key: str
    failing: bool
    detail: str


@dataclass(frozen=True)
class Message:
    subject: str
    body: str


def settings() -> dict[str, Any]:
    """``[alerts]``: blocks, urls (a secret), quiet_hours."""
    from flows.config import section

    return section("alerts", {"blocks": [], "urls": [], "quiet_hours": 24.0}, secrets=("urls",))


def configured() -> bool:
    found = settings()
    return bool(found["blocks"] or found["urls"])


def evaluate(
    warehouse: Warehouse, conditions: Iterable[Condition], now: datetime | None = None
) -> list[Message]:
    """Update ``audit.alert_states`` with ``conditions`` and return the messages they call for."""
    now = now or datetime.now(UTC)
    quiet = timedelta(hours=settings()["quiet_hours"])
    ph = warehouse.paramstyle
    messages = []
    with warehouse.connect() as conn:
        cur = conn.cursor()
        cur.execute("create schema if not exists audit")
        cur.execute(STATES_DDL)
        cur.execute("select alert_key, is_failing, since, notified_at from audit.alert_states")
        states = {
            key: (failing, as_utc(since), as_utc(notified))
            for key, failing, since, notified in cur.fetchall()
        }
        for condition in conditions:
            failing, since, notified = states.get(condition.key, (False, None, None))
            if condition.failing and not failing:
                announce = notified is None or now - notified >= quiet
                if announce:
                    messages.append(_message(warehouse, condition, now))
                _store(cur, ph, condition, now, now if announce else notified)
            elif not condition.failing and failing:
                if notified is not None and since is not None and notified >= since:
                    messages.append(_message(warehouse, condition, since))
                _store(cur, ph, condition, now, notified)
    return messages


def _store(cur: Any, ph: str, condition: Condition, since: datetime, notified: datetime | None) -> None:
    cur.execute(f"delete from audit.alert_states where alert_key = {ph}", (condition.key,))
    cur.execute(
        f"insert into audit.alert_states values ({ph}, {ph}, {ph}, {ph}, {ph})",
        (condition.key, condition.failing, since, notified, redact(condition.detail)[:2000]),
    )


def _message(warehouse: Warehouse, condition: Condition, since: datetime) -> Message:
    """A key failing since ``since``, or passing again after failing since then."""
    where = warehouse.describe()
    if condition.failing:
        subject, said = f"{condition.key} failing on {where}", f"is failing on {where} since"
    else:
        subject, said = f"{condition.key} recovered on {where}", f"passes again on {where}; failing since"
    return Message(
        subject=f"elt: {subject}",
        body=redact(f"{condition.key} {said} {since:%Y-%m-%d %H:%M} UTC: {condition.detail}"),
    )


def abandoned_message(warehouse: Warehouse, count: int) -> Message:
    return Message(
        subject=f"elt: {count} abandoned attempts on {warehouse.describe()}",
        body=f"{count} attempts of an earlier run on {warehouse.describe()} were abandoned: its process "
        "ended without finishing them (killed or crashed). `elt status` shows which.",
    )


def send(messages: list[Message]) -> int:
    """Send each message to every configured destination; return how many deliveries succeeded. A
    destination that fails is logged, never raised."""
    if not messages:
        return 0
    found = settings()
    delivered = 0
    for name in found["blocks"]:
        try:
            from prefect.blocks.core import Block

            if "/" not in name:
                raise ValueError("name it as <block type>/<block name>, e.g. slack-webhook/ops")
            block = Block.load(name)  # the type's slug finds the class: any notification block
            for message in messages:
                block.notify(message.body, subject=message.subject)
                delivered += 1
        except Exception as exc:  # an alert must never fail what it reports on
            logger.warning("alert destination (Prefect block %r) failed: %s", name, redact(str(exc)))
    for url in found["urls"]:
        import apprise

        sender = apprise.Apprise()
        if not sender.add(str(url)):
            logger.warning("alert destination: an Apprise URL that Apprise cannot use (alerts.urls)")
            continue
        for message in messages:
            if sender.notify(body=message.body, title=message.subject):
                delivered += 1
            else:
                logger.warning("alert destination (an Apprise URL of alerts.urls) did not take the message")
    return delivered


def notify(warehouse: Warehouse, conditions: Iterable[Condition], extra: Iterable[Message] = ()) -> int:
    """Evaluate ``conditions`` and send what they call for (and ``extra``); nothing, and no state kept,
    when no destination is configured. Never raises."""
    try:
        if not configured():
            return 0
        return send(evaluate(warehouse, conditions) + list(extra))
    except Exception as exc:
        logger.warning("alerts could not be evaluated or sent: %s", redact(str(exc)))
        return 0
