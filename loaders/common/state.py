"""Operator edits of a source's incremental state, stored in the warehouse like every dlt state."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dlt

from loaders.common.pipeline import run_source
from loaders.common.warehouse import ConfigurationError, Warehouse


def parse_cursor(text: str) -> datetime:
    """An ISO 8601 timestamp (``Z`` or an offset; a naive one is taken as UTC)."""
    value = text.strip()
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(
            f"{value[:60]!r} is not an ISO 8601 timestamp (e.g. 2024-05-01T12:30:00Z)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_cursor_file(path: Path) -> datetime:
    """The timestamp an old sync script kept in a file such as ``last_sync.txt``."""
    if not path.is_file():
        raise ConfigurationError(f"{path} does not exist")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        raise ConfigurationError(f"{path} is empty: expected one ISO 8601 timestamp")
    return parse_cursor(lines[-1])


def set_resource_cursor(
    warehouse: Warehouse,
    *,
    pipeline_name: str,
    dataset_name: str,
    source_name: str,
    resource_name: str,
    values: dict[str, Any],
) -> None:
    """Write ``values`` into one resource's state, through a load of its own (no data)."""

    @dlt.resource(name=resource_name)
    def seed() -> Any:
        state = dlt.current.resource_state()
        state.update(values)
        yield from ()

    @dlt.source(name=source_name)
    def source() -> Any:
        return seed

    run_source(source(), pipeline_name=pipeline_name, dataset_name=dataset_name, warehouse=warehouse)


def get_resource_state(
    warehouse: Warehouse, *, pipeline_name: str, dataset_name: str, source_name: str, resource_name: str
) -> dict[str, Any]:
    """One resource's state as the warehouse holds it."""
    import tempfile

    with tempfile.TemporaryDirectory() as workdir:
        pipeline = dlt.pipeline(
            pipeline_name=pipeline_name,
            destination=warehouse.dlt_destination(),
            dataset_name=dataset_name,
            pipelines_dir=workdir,
        )
        pipeline.sync_destination()
        sources = pipeline.state.get("sources", {})
        return dict(sources.get(source_name, {}).get("resources", {}).get(resource_name, {}))
