"""Deterministic sample sales sources for the demo and the tests, and a local sales API server.

The server follows the API the loader expects: ``GET {base}/orders?start_date&end_date&page&page_size``
with the key in a header, answering ``{"data": [...], "page", "page_size", "total_pages",
"total_records"}``. Tests can queue faults (5xx, 429 with ``Retry-After``, a stall past the client's
timeout, a truncated body) to exercise the retries.
"""

from __future__ import annotations

import csv
import json
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

SEED = 20260101
FIRST_DAY = date(2026, 1, 1)
REGIONS = ("North", "South", "East", "West", "Central")
PRODUCTS = {
    "Widget": 4.50,
    "Gadget": 12.00,
    "Gizmo": 7.25,
    "Doohickey": 2.10,
    "Sprocket": 0.85,
    "Flange": 3.40,
    "Café Crème": 2.80,
    "Thingamajig": 19.99,
}
ROLES = ("admin", "manager", "sales_rep", "analyst")
HEADER = (
    "order_id",
    "date",
    "user_id",
    "product_name",
    "quantity",
    "unit_price",
    "total_amount",
    "region",
)


def usernames(count: int = 40) -> list[str]:
    first = ("amina", "brian", "chloe", "david", "esther", "faith", "george", "hassan", "irene")
    last = ("otieno", "santos", "reyes", "mwangi", "cruz", "wanjiru", "garcia", "kimani")
    rng = random.Random(SEED)
    names: list[str] = []
    while len(names) < count:
        name = f"{rng.choice(first)}.{rng.choice(last)}{rng.randint(1, 99)}"
        if name not in names:
            names.append(name)
    return names


def order_lines(
    rng: random.Random, prefix: str, count: int, first_day: date, days: int, users: list[str]
) -> list[dict[str, Any]]:
    """Valid order lines: 1-3 distinct products per order."""
    lines: list[dict[str, Any]] = []
    order_no = 0
    while len(lines) < count:
        order_no += 1
        day = first_day + timedelta(days=rng.randrange(days))
        user = rng.choice(users)
        region = rng.choice(REGIONS)
        for product in rng.sample(sorted(PRODUCTS), rng.randint(1, 3)):
            quantity = rng.randint(1, 20)
            price = PRODUCTS[product]
            lines.append(
                {
                    "order_id": f"{prefix}-{order_no:06d}",
                    "date": day,
                    "user_id": user,
                    "product_name": product,
                    "quantity": quantity,
                    "unit_price": f"{price:.2f}",
                    "total_amount": f"{quantity * price:.2f}",
                    "region": region,
                }
            )
    return lines[:count]


def plant_bad_rows(lines: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    """One bad row of each kind the loader rejects (a duplicate line among them)."""
    base = dict(lines[0])
    bad = [
        base | {"order_id": f"{prefix}-BAD-01", "user_id": ""},  # missing required field
        base | {"order_id": f"{prefix}-BAD-02", "quantity": "two"},  # wrong type
        base | {"order_id": f"{prefix}-BAD-03", "quantity": 0, "total_amount": "0.00"},
        base | {"order_id": f"{prefix}-BAD-04", "unit_price": "-1.00"},  # non-positive price
        base | {"order_id": f"{prefix}-BAD-05", "total_amount": "999.99"},  # total mismatch
        base | {"order_id": f"{prefix}-BAD-06", "date": "2026-02-30"},  # unparseable date
        dict(lines[1]) | {"region": "Elsewhere"},  # the same order line twice, two versions
    ]
    return lines + bad


def _csv_value(value: Any, date_format: str) -> str:
    if isinstance(value, date):
        return value.strftime(date_format)
    return str(value)


def write_orders_csv(
    path: Path,
    lines: list[dict[str, Any]],
    *,
    header: tuple[str, ...] = HEADER,
    delimiter: str = ",",
    encoding: str = "utf-8",
    date_format: str = "%Y-%m-%d",
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter, lineterminator="\n")
        writer.writerow(header)
        for line in lines:
            writer.writerow([_csv_value(line[name], date_format) for name in HEADER])


LEGACY_HEADER = (
    "Order No",
    "Order Date",
    "Clerk",
    "Article",
    "Qty",
    "Price",
    "Amount",
    "Branch Region",
)


@dataclass
class SalesSamples:
    root: Path
    api_records: list[dict[str, Any]]
    users: list[str]


def generate(root: Path) -> SalesSamples:
    """Write the demo's sales sources under ``root`` (idempotent: same bytes every time)."""
    rng = random.Random(SEED)
    users = usernames()
    jan = order_lines(rng, "SHOP", 1500, FIRST_DAY, 31, users)
    feb = order_lines(rng, "SHOPF", 1500, FIRST_DAY + timedelta(days=31), 28, users)
    write_orders_csv(root / "shop" / "orders_2026_01.csv", plant_bad_rows(jan, "SHOP"))
    shop_feb = root / "shop" / "orders_2026_02.csv"
    write_orders_csv(shop_feb, feb)
    with shop_feb.open("a", encoding="utf-8") as fh:  # a row with an extra field
        fh.write("SHOPF-BAD-07,2026-02-03,amina.otieno1,Widget,1,4.50,4.50,North,EXTRA\n")
    till = order_lines(rng, "TILL", 400, FIRST_DAY + timedelta(days=59), 31, users)
    write_orders_csv(
        root / "legacy_till" / "till_2026_03.csv",
        plant_bad_rows(till, "TILL"),
        header=LEGACY_HEADER,
        delimiter=";",
        encoding="cp437",
        date_format="%d/%m/%Y",
    )
    write_users_csv(root / "users" / "users.csv", users, rng)
    api_records = [
        line | {"date": _csv_value(line["date"], "%Y-%m-%d")}
        for line in plant_bad_rows(order_lines(rng, "API", 1200, FIRST_DAY, 90, users), "API")
    ]
    return SalesSamples(root=root, api_records=api_records, users=users)


def write_users_csv(path: Path, users: list[str], rng: random.Random) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(("username", "email", "role", "initial_password"))
        for i, name in enumerate(users):
            role = ROLES[0] if i == 0 else rng.choice(ROLES[1:])
            shown = name.upper() if i % 7 == 0 else name  # normalised on load
            writer.writerow(
                (f" {shown} ", f"{name}@Example.ORG", role, f"Welcome-{rng.randrange(10**8):08d}")
            )
        writer.writerow(("intruder", "intruder@example.org", "superuser", "Welcome-00000000"))
        writer.writerow(("twin", f"{users[1]}@example.org", "analyst", "Welcome-11111111"))
        writer.writerow(("no.email", "not-an-address", "analyst", "Welcome-22222222"))


# --------------------------------------------------------------------------------------------------
# The local sales API
# --------------------------------------------------------------------------------------------------


@dataclass
class SalesApiServer:
    """A sales API on loopback serving ``records``; ``faults`` are answered before real pages."""

    records: list[dict[str, Any]]
    api_key: str
    host: str = "127.0.0.1"
    port: int = 0
    faults: deque = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://{self.host}:{self._server.server_address[1]}/api/v1"

    def __enter__(self) -> SalesApiServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        handler = _handler_for(self)
        self._server = _QuietServer((self.host, self.port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def page(self, query: dict[str, list[str]]) -> dict[str, Any]:
        start = query.get("start_date", ["0000-01-01"])[0]
        end = query.get("end_date", ["9999-12-31"])[0]
        page = max(int(query.get("page", ["1"])[0]), 1)
        size = min(max(int(query.get("page_size", ["100"])[0]), 1), 1000)
        # (a record that is not an object is served whatever the window: a broken API's answer)
        selected = [r for r in self.records if not isinstance(r, dict) or start <= str(r.get("date")) <= end]
        total_pages = max((len(selected) + size - 1) // size, 1)
        chunk = selected[(page - 1) * size : page * size]
        return {
            "data": chunk,
            "page": page,
            "page_size": size,
            "total_pages": total_pages,
            "total_records": len(selected),
        }


class _QuietServer(ThreadingHTTPServer):
    """A client that gave up (a timeout test) is not an error worth printing."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler_for(api: SalesApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # One buffered write per response and no Nagle delay: otherwise each keep-alive request
        # waits ~40 ms for TCP's delayed acknowledgement.
        disable_nagle_algorithm = True
        wbufsize = 1 << 16

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet server
            return

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            url = urlparse(self.path)
            query = parse_qs(url.query)
            fault = api.faults.popleft() if api.faults else None
            api.requests.append({"path": url.path, "query": query, "fault": fault})
            if self.headers.get("X-API-Key") != api.api_key:
                self._send(401, b'{"error": "missing or wrong API key"}')
                return
            if not url.path.rstrip("/").endswith("/orders"):
                self._send(404, b'{"error": "not found"}')
                return
            if fault == "timeout":
                time.sleep(3.0)
            elif isinstance(fault, int):
                headers = {"Retry-After": "1"} if fault == 429 else {}
                self._send(fault, json.dumps({"error": f"fault {fault}"}).encode(), headers)
                return
            body = json.dumps(api.page(query), default=str).encode()
            if fault == "truncated":
                body = body[: len(body) // 2]
            self._send(200, body)

    return Handler
