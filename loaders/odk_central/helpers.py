"""HTTP details of ODK Central: a session that logs in once and renews itself, OData paging, parsing.

Central's API (getodk/central-backend ``docs/api.yaml``): ``POST /v1/sessions`` gives a bearer token
with an ``expiresAt``; the OData service of a form lists ``Submissions`` and one table per repeat; data
documents page with ``@odata.nextLink`` (a ``$skiptoken`` that stays stable while submissions arrive).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import quote

import certifi
from dlt.sources.helpers.requests import Client
from dlt.sources.helpers.requests.retry import DEFAULT_RETRY_STATUS
from requests import Response
from requests.utils import get_environ_proxies
from urllib3 import BaseHTTPResponse, PoolManager, ProxyManager, Retry, Timeout
from urllib3.exceptions import HTTPError

from loaders.common import progress
from loaders.common.attempts import CountingAdapter, RequestStats
from loaders.common.warehouse import ConfigurationError, register_secret

RETRY_STATUSES = frozenset(DEFAULT_RETRY_STATUS)  # downloads retry what dlt's client retries
T = TypeVar("T")
RENEW_BEFORE = timedelta(minutes=5)  # log in again this long before the token expires (at most)


class CentralError(RuntimeError):
    """Central answered something the loader cannot use; the message says what and where."""


class CentralSession:
    """A logged-in client for one Central server.

    Logs in with ``POST /v1/sessions``, reuses the token, logs in again shortly before it expires,
    and once more when Central answers 401 (a revoked or expired session); a second 401 fails.
    Retries (429, 5xx, timeouts) are dlt's, with exponential backoff honouring ``Retry-After``; file
    downloads (``download``) go through urllib3 itself with the same retry rules.
    """

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        request_timeout: float = 60.0,
        max_attempts: int = 5,
        backoff_factor: float = 1.0,
        max_retry_delay: float = 60.0,
        pool_size: int = 8,
        stats: RequestStats | None = None,
    ) -> None:
        register_secret(password)
        self.base_url = base_url.rstrip("/")
        self.api_url = self.base_url if self.base_url.endswith("/v1") else self.base_url + "/v1"
        self._username = username
        self._password = password
        self.stats = stats or RequestStats()
        client = Client(
            request_timeout=request_timeout,
            request_max_attempts=max_attempts,
            request_backoff_factor=backoff_factor,
            request_max_retry_delay=max_retry_delay,
            raise_for_status=False,
        )
        self._client = client
        self._proxies = get_environ_proxies(self.base_url)
        self._ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        adapter = CountingAdapter(self.stats, pool_size)
        self._adapter = adapter
        self._files = _file_pool(
            self._proxies.get(self.base_url.split(":", 1)[0]) or self._proxies.get("all"),
            maxsize=pool_size,
            timeout=Timeout(connect=request_timeout, read=request_timeout),
            retries=Retry(
                total=None,
                connect=max_attempts - 1,
                read=max_attempts - 1,
                status=max_attempts - 1,
                other=max_attempts - 1,
                redirect=5,  # a Central with S3 storage redirects downloads to a signed URL
                allowed_methods=frozenset({"GET"}),
                status_forcelist=RETRY_STATUSES,
                backoff_factor=backoff_factor,
                backoff_max=max_retry_delay,
                respect_retry_after_header=True,
                raise_on_status=False,
            ),
            ca_certs=self._ca_bundle or certifi.where(),
        )
        self._token: str | None = None
        self._expires_at: datetime | None = None
        self._lifetime = timedelta(hours=24)
        self._login_lock = threading.Lock()
        self._users = 1
        self._attempts = max_attempts
        self.server_time: datetime | None = None  # Central's clock at its last answer

    @property
    def _session(self) -> Any:
        session = self._client.session  # one per thread (dlt's client keeps them thread-local)
        if session.get_adapter("http://") is not self._adapter:
            session.mount("http://", self._adapter)
            session.mount("https://", self._adapter)
            # The environment's proxy and CA settings, read once for Central's host: requests would read
            # them again on every request (0.7 ms each, a quarter of an attachment download here); and
            # no ~/.netrc, whose Basic credentials for the host would replace the bearer token.
            session.trust_env = False
            session.proxies.update(self._proxies)
            if self._ca_bundle and session.verify is True:
                session.verify = self._ca_bundle
        return session

    def login(self) -> None:
        with self._login_lock:
            self._login()

    def _login(self) -> None:
        """``POST /v1/sessions``; the caller holds ``_login_lock``."""
        response = self._session.post(
            f"{self.api_url}/sessions",
            json={"email": self._username, "password": self._password},
        )
        self.stats.logins += 1
        if response.status_code in (401, 403):  # a setting to fix: trying again cannot help
            raise ConfigurationError(
                f"ODK Central refused the login of {self._username!r} (HTTP {response.status_code}): "
                "fix sources.odk_central.username and password"
            )
        if response.status_code != 200:
            raise CentralError(
                f"ODK Central login as {self._username!r} failed: HTTP {response.status_code} "
                f"{_problem(response)}; check sources.odk_central credentials"
            )
        body = _json(response, "POST /v1/sessions")
        self._token = body["token"]
        register_secret(self._token)
        # Central's clock may differ from ours: keep the lifetime it granted, counted from now.
        created = _parse_time(body.get("createdAt"))
        expires = _parse_time(body.get("expiresAt"))
        self._lifetime = (expires - created) if created and expires else timedelta(hours=24)
        self._expires_at = datetime.now(UTC) + self._lifetime

    def _ensure_token(self) -> str:
        """A valid token: one thread logs in while the others wait for its token (after a 401 seen by
        many concurrent requests, one login, not one each)."""
        with self._login_lock:
            if (
                self._token is None
                or self._expires_at is None
                or datetime.now(UTC) >= self._expires_at - min(RENEW_BEFORE, self._lifetime / 10)
            ):
                self._login()
            assert self._token is not None
            return self._token

    def expect_users(self, count: int) -> None:
        """``count`` resources share this session; the last to ``release`` it logs out."""
        with self._login_lock:
            self._users = count

    def release(self) -> None:
        with self._login_lock:
            self._users -= 1
            last = self._users <= 0
        if last:
            self.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        expected: tuple[int, ...] = (200,),
    ) -> Response:
        """An authenticated request; a 401 leads to one new login and one more try."""
        url = url if url.startswith("http") else f"{self.api_url}/{url.lstrip('/')}"

        def send(authorization: dict[str, str]) -> tuple[Response, int]:
            response = self._session.request(
                method, url, params=params, headers={**(headers or {}), **authorization}
            )
            self._note_server_time(response)
            return response, response.status_code

        return self._authenticated(f"{method} {_path(url)}", send, expected)

    def download(
        self, url: str, *, headers: dict[str, str] | None = None, expected: tuple[int, ...] = (200,)
    ) -> BaseHTTPResponse:
        """A file (an attachment): as ``request``, but through urllib3 itself, with urllib3's retries
        (the same statuses, attempts and backoff, ``Retry-After`` honoured). requests and dlt's retrying
        session cost 1 ms of CPU per request here, four times urllib3's: most of a small file's cost."""

        def send(authorization: dict[str, str]) -> tuple[BaseHTTPResponse, int]:
            try:
                response = self._files.request("GET", url, headers={**(headers or {}), **authorization})
            except HTTPError as exc:  # every attempt failed (urllib3 keeps no history then)
                for _ in range(self._attempts):
                    self.stats.count(failed=True)
                reason = getattr(exc, "reason", None) or exc
                raise CentralError(
                    f"ODK Central GET {_path(url)}: {type(reason).__name__}: {reason}"
                ) from None
            for failed in response.retries.history if response.retries else ():
                self.stats.count(failed=failed.status is None or failed.status in RETRY_STATUSES)
            self.stats.count(failed=response.status in RETRY_STATUSES)
            return response, response.status

        return self._authenticated(f"GET {_path(url)}", send, expected)

    def _authenticated(
        self, where: str, send: Callable[[dict[str, str]], tuple[T, int]], expected: tuple[int, ...]
    ) -> T:
        """``send`` with the bearer token; after a 401, one new login (one for all threads), one more try."""
        for attempt in range(2):
            token = self._ensure_token()
            response, status = send({"Authorization": f"Bearer {token}"})
            if status == 401 and attempt == 0:
                with self._login_lock:
                    if self._token == token:  # no other thread logged in meanwhile
                        self._token = None
                continue
            if status not in expected:
                raise CentralError(f"ODK Central {where}: HTTP {status} {_problem(response)}")
            return response
        raise CentralError(f"ODK Central {where}: still 401 after logging in again")

    def _note_server_time(self, response: Response) -> None:
        """Central's clock, from the ``Date`` header of its last answer (second precision, rounded
        down: an earlier moment is the safe side for a cursor)."""
        header = response.headers.get("Date")
        if not header:
            return
        try:
            moment = parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return
        self.server_time = moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def get_json(self, url: str, params: dict[str, Any] | None = None) -> Any:
        response = self.request("GET", url, params=params)
        return _json(response, f"GET {_path(url)}")

    def odata_url(self, project_id: int, xml_form_id: str) -> str:
        return f"{self.api_url}/projects/{project_id}/forms/{quote(xml_form_id, safe='')}.svc"

    def paginate(self, url: str, params: dict[str, Any] | None = None) -> Iterator[list[dict[str, Any]]]:
        """Pages of an OData data document, following ``@odata.nextLink`` exactly as given.

        Not dlt's RESTClient with a JSONLinkPaginator, which follows the same link: its requests would
        bypass ``request`` (one login after a 401 however many threads saw it, Central's clock from
        each answer) unless re-created in an auth hook, it parses each page's JSON once for the data
        and once for the link, and a body that is not an OData document comes out as an empty page
        where this raises."""
        page = self.get_json(url, params)
        while True:
            if not isinstance(page, dict) or not isinstance(page.get("value"), list):
                raise CentralError(f"ODK Central GET {_path(url)}: not an OData data document")
            progress.count("pages")
            yield page["value"]
            next_link = page.get("@odata.nextLink")
            if not next_link:
                return
            page = self.get_json(next_link)

    def close(self) -> None:
        """Log out (``DELETE /v1/sessions/current``) so the token does not outlive the run."""
        if self._token:
            # Logging out is a courtesy: the token expires anyway.
            with contextlib.suppress(Exception):
                self._session.delete(
                    f"{self.api_url}/sessions/current",
                    headers={"Authorization": f"Bearer {self._token}"},
                )
            self._token = None
        self._files.clear()


def _file_pool(proxy: str | None, **options: Any) -> PoolManager:
    return ProxyManager(proxy, **options) if proxy else PoolManager(**options)


def _path(url: str) -> str:
    """A URL without scheme, host or query, for messages (no tokens are ever in URLs)."""
    from urllib.parse import urlparse

    return urlparse(url).path


def _problem(response: Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict) and "message" in body:
        return f"({body.get('code')}: {body['message']})"
    return ""


def _json(response: Response, where: str) -> Any:
    """Parse a body strictly: a truncated or invalid page fails the run rather than loading half."""
    try:
        return json.loads(response.content)
    except ValueError as exc:
        raise CentralError(
            f"ODK Central {where}: invalid JSON ({exc.msg} at byte {exc.pos} of {len(response.content)})"
        ) from None


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def odata_time(moment: datetime) -> str:
    """An ISO timestamp as Central's $filter takes it (UTC, milliseconds, Z)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: str | None) -> datetime | None:
    """Central's timestamps (``2026-01-05T07:30:00.000Z``) as aware datetimes."""
    return _parse_time(text)
