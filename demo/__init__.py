"""``elt demo``'s sources: sample files and databases generated under a folder, and the stand-ins for the
services that cannot run here (the sales API, ODK Central), given to the run as settings.

This is harness, not product: ``loaders/`` and ``flows/`` never import it, except ``elt demo`` itself,
at its edge (``flows/cli.py``). See the README's Layout section.
"""

from __future__ import annotations

import json
import secrets
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from loaders.common.warehouse import ROOT
from testing.fake_central import FakeCentral
from testing.samples import communities, odk_central, registration, sales

DEFAULT_FOLDER = ROOT / "data" / "samples"


@dataclass(frozen=True)
class DemoSources:
    env: dict[str, str]  # the settings that point every source at the samples
    about: list[str]  # what was generated and where, for the run's output
    community_records: int  # records in the first batch of community files


@contextmanager
def sample_sources(folder: Path = DEFAULT_FOLDER, submissions: int = 300) -> Iterator[DemoSources]:
    """Generate every source's samples under ``folder`` and serve the APIs until the block ends.

    The credentials are fresh for every demo and never written anywhere."""
    generated = sales.generate(folder / "sales")
    registration_db = folder / "registration" / "source.sqlite"
    registration_db.parent.mkdir(parents=True, exist_ok=True)
    registration_url = f"sqlite:///{registration_db}"
    built = registration.build_source_database(registration_url)
    registration.plant_faults(registration_url, at=registration.FAULTS_AT)
    community_records = communities.generate(folder / "communities")
    api_key = secrets.token_urlsafe(24)
    odk_user, odk_password = "demo@example.org", secrets.token_urlsafe(16)
    central = FakeCentral(users={odk_user: odk_password}, start_time=odk_central.DEMO_CLOCK)
    with sales.SalesApiServer(generated.api_records, api_key=api_key) as api, central:
        odk_central.populate(central, n=submissions)
        env = {
            "ELT_TARGET": "duckdb",
            "SOURCES__SALES_API__BASE_URL": api.base_url,
            "SOURCES__SALES_API__API_KEY": api_key,
            "SOURCES__ODK_CENTRAL__BASE_URL": central.base_url,
            "SOURCES__ODK_CENTRAL__USERNAME": odk_user,
            "SOURCES__ODK_CENTRAL__PASSWORD": odk_password,
            "SOURCES__REGISTRATION__CREDENTIALS": registration_url,
            # the sample files are complete when written: no need to let them settle
            "SOURCES__SALES_CSV__SETTLE_SECONDS": "0",
            "SOURCES__SALES_USERS__SETTLE_SECONDS": "0",
            "SOURCES__COMMUNITIES__SETTLE_SECONDS": "0",
            **_sample_paths(folder),
        }
        about = [
            f"Sample sources: {folder} (sales API on {api.base_url}, "
            f"ODK Central stand-in on {central.base_url}, registration database {registration_db})",
            f"Registration sample: {built['wards']:,} wards adding up to {built['ward_total']:,} registered "
            f"voters and {built['polling_stations']:,} polling stations adding up to "
            f"{built['station_total']:,}, before the planted faults (a constituency at 0, a ward "
            "missing, a ward off by 1,000)",
        ]
        yield DemoSources(env, about, community_records.records)


def later_community_batch(folder: Path = DEFAULT_FOLDER) -> tuple[int, dict[str, str]]:
    """Write a later batch of community records (revised figures, one record deleted) beside the first:
    (how many, the settings that point the source at them)."""
    count = communities.write_update(folder / "communities")
    return count, {
        "SOURCES__COMMUNITIES__FILES_PATH": str(folder / "communities"),
        "SOURCES__COMMUNITIES__SETTLE_SECONDS": "0",  # the batch was just written, whole
    }


def _sample_paths(folder: Path) -> dict[str, str]:
    """Point the CSV sources at the generated samples when they are not in the default folder."""
    if folder.resolve() == DEFAULT_FOLDER.resolve():
        return {}  # .dlt/config.toml already points here
    config = tomllib.loads((ROOT / ".dlt" / "config.toml").read_text())
    file_sources = config["sources"]["sales_csv"]["file_sources"]
    for source in file_sources:
        relative = Path(source["path"]).relative_to("data/samples")
        source["path"] = str(folder / relative)
    users = Path(config["sources"]["sales_users"]["users_path"]).relative_to("data/samples")
    return {
        "SOURCES__COMMUNITIES__FILES_PATH": str(folder / "communities"),
        "SOURCES__SALES_CSV__FILE_SOURCES": json.dumps(file_sources),
        "SOURCES__SALES_USERS__USERS_PATH": str(folder / users),
    }
