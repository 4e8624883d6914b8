"""The demo's sample sources for the flow and operations tests: files in a folder, the sales API and an ODK
Central stand-in on loopback, and the settings (environment variables) that point the loaders at them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testing.fake_central import FakeCentral
from testing.samples import communities as community_samples
from testing.samples import odk_central as odk_samples
from testing.samples import registration as registration_samples
from testing.samples import sales as samples
from tests.odk_fixtures import EMAIL, PASSWORD

API_KEY = "flow-test-key-1234"
LEGACY_TILL = {
    "name": "legacy_till",
    "encoding": "cp437",
    "delimiter": ";",
    "date_format": "%d/%m/%Y",
    "columns": {
        "order_id": "Order No",
        "order_date": "Order Date",
        "user_id": "Clerk",
        "product_name": "Article",
        "quantity": "Qty",
        "unit_price": "Price",
        "total_amount": "Amount",
        "region": "Branch Region",
    },
}


@dataclass
class SampleSources:
    env: dict[str, str]  # the settings, secrets included
    generated: Any  # testing.samples.sales.SalesSamples
    api: Any  # the sales API stand-in
    odk: Any  # the ODK Central stand-in


@contextmanager
def sample_sources(
    root: Path, *, submissions: int = 40, api_key: str = API_KEY, odk_password: str = PASSWORD
) -> Iterator[SampleSources]:
    """Write the sample files under ``root`` and serve the APIs until the block ends."""
    generated = samples.generate(root / "samples")
    file_sources = [
        {"name": "shop", "path": str(generated.root / "shop")},
        LEGACY_TILL | {"path": str(generated.root / "legacy_till")},
    ]
    registration_url = f"sqlite:///{root / 'registration.sqlite'}"
    registration_samples.build_source_database(registration_url, counties={"001"})
    community_samples.generate(root / "communities", regions=("10",))
    env = {
        "SOURCES__SALES_CSV__FILE_SOURCES": json.dumps(file_sources),
        "SOURCES__SALES_USERS__USERS_PATH": str(generated.root / "users"),
        "SOURCES__SALES_API__API_KEY": api_key,
        "SOURCES__SALES_API__BACKOFF_FACTOR": "0.05",
        "SOURCES__SALES_API__MAX_ATTEMPTS": "2",
        "ELT_LOAD_RETRIES": "0",
        "SOURCES__ODK_CENTRAL__USERNAME": EMAIL,
        "SOURCES__ODK_CENTRAL__PASSWORD": odk_password,
        "SOURCES__ODK_CENTRAL__ATTACHMENTS_STORAGE": str(root / "attachments"),
        "SOURCES__ODK_CENTRAL__BACKOFF_FACTOR": "0.05",
        "SOURCES__REGISTRATION__CREDENTIALS": registration_url,
        "SOURCES__COMMUNITIES__FILES_PATH": str(root / "communities"),
    }
    with (
        samples.SalesApiServer(generated.api_records, api_key=api_key) as api,
        FakeCentral(users={EMAIL: odk_password}) as odk,
    ):
        odk_samples.populate(odk, n=submissions)
        env["SOURCES__SALES_API__BASE_URL"] = api.base_url
        env["SOURCES__ODK_CENTRAL__BASE_URL"] = odk.base_url
        yield SampleSources(env, generated, api, odk)
