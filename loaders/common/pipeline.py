"""Run one dlt source into the warehouse, with dlt state restored from (and kept in) the warehouse."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import dlt

from loaders.common.warehouse import Warehouse


def run_source(
    source: Any,
    *,
    pipeline_name: str,
    dataset_name: str,
    warehouse: Warehouse,
) -> Any:
    """Extract, normalise and load ``source``; raise if any load job failed.

    The pipeline's working folder is temporary: dlt restores the state (cursors, loaded-file hashes)
    and schema from the warehouse at the start of every run, so no local file carries state and a new
    machine or container resumes where the last run stopped. State is written in the same load as
    the data, so a failed load does not advance a cursor.
    """
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    with tempfile.TemporaryDirectory(prefix=f"elt-{pipeline_name}-") as workdir:
        pipeline = dlt.pipeline(
            pipeline_name=pipeline_name,
            destination=warehouse.dlt_destination(),
            dataset_name=dataset_name,
            pipelines_dir=workdir,
        )
        # PostgreSQL loads through COPY (dlt's csv format); DuckDB reads Parquet natively.
        file_format = "csv" if warehouse.target == "postgres" else "parquet"
        info = pipeline.run(source, loader_file_format=file_format)
        info.raise_on_failed_jobs()
        return info
