"""Source databases read through SQLAlchemy (any URL; ``postgresql://`` uses psycopg2)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from loaders.common.warehouse import ConfigurationError, redact, register_secret


def sqlalchemy_url(url: str) -> Any:
    """A SQLAlchemy URL object; ``postgresql://`` uses psycopg2 (installed with dlt's PostgreSQL
    destination; SQLAlchemy's own default is psycopg 3, not installed)."""
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


def connect_source(credentials: str, what: str, setting: str) -> sa.Engine:
    """An engine for ``what`` (e.g. "the registration source database") that fails fast and clearly
    (host and reason, never the password) when the database cannot be reached. ``setting`` names the
    configuration key to fix."""
    try:
        url = sqlalchemy_url(credentials)
    except sa.exc.ArgumentError:
        raise ConfigurationError(
            f"{setting} is not a SQLAlchemy URL (e.g. postgresql://user:pw@host/db)"
        ) from None
    register_secret(url.password)
    location = url.render_as_string(hide_password=True)
    connect_args = {"connect_timeout": 10} if url.drivername.startswith("postgresql") else {}
    try:
        engine = sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)
        with engine.connect():
            pass
    except ImportError as exc:
        raise ConfigurationError(
            f"the driver for {location} is not installed ({exc.name}): add it to the project's dependencies"
        ) from None
    except sa.exc.SQLAlchemyError as exc:
        reason = redact(str(getattr(exc, "orig", None) or exc).strip().splitlines()[0])
        raise ConfigurationError(f"cannot reach {what} {location}: {reason}") from None
    return engine
