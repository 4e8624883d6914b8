"""Helpers shared by the ODK Central tests: a populated stand-in server and a loader run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loaders.common.pipeline import run_source
from loaders.common.quarantine import LoadStats
from loaders.common.warehouse import Warehouse
from loaders.odk_central import odk_central, stored_etags
from testing.fake_central import FakeCentral

EMAIL = "loader@example.org"
PASSWORD = "odk-test-password-7c1"


def central(**kwargs: Any) -> FakeCentral:
    return FakeCentral(users={EMAIL: PASSWORD}, **kwargs)


def load_odk(
    server: FakeCentral,
    warehouse: Warehouse,
    storage: Path,
    forms: list[Any] | None = None,
    **options: Any,
) -> LoadStats:
    stats = LoadStats()
    source = odk_central(
        base_url=server.base_url,
        project_id=server.project_id,
        forms=forms or [{"xml_form_id": "rental_survey", "attachments": ["building_image"]}],
        username=EMAIL,
        password=PASSWORD,
        page_size=options.pop("page_size", 50),
        attachments_storage=str(storage),
        backoff_factor=options.pop("backoff_factor", 0.05),
        request_timeout=options.pop("request_timeout", 1.0),
        known_etags=stored_etags(warehouse),
        stats=stats,
        **options,
    )
    run_source(source, pipeline_name="odk_central", dataset_name="raw_odk_central", warehouse=warehouse)
    return stats
