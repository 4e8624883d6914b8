"""Great Expectations checks for the marts, on DuckDB and on PostgreSQL.

The suites, validation definitions and checkpoints are files in the GX file context ``gx/``
(one suite per mart, named after it; one checkpoint per mart and target, ``<mart>__<target>``,
with an explicit, empty action list). This module only runs them and turns GX's results into an
:class:`ExpectationsResult` the flow can record.

A mart is checked when its YAML says so (``meta: {expectations: true}``, with a suite of its name in
``gx/expectations/``); ``run_expectations(warehouse, sources)`` checks the marts built from the given
dbt sources only (their lineage, from dbt's manifest: ``flows.manifest``), so a deployment that never
loads a source (a sales-only one, say) is not failed for that source's missing marts.

- PostgreSQL: GX's SQL (postgres) datasource, so the checks run in the database. The connection
  string reaches GX in memory only (``runtime_environment``), never through a file in ``gx/``.
- DuckDB: GX's SQL engine through duckdb-engine is broken (GX issues #10738 and #11579), so each
  mart is read into a pandas dataframe over one DuckDB connection, which is closed before any
  check runs (the same process writes to the file afterwards), and validated with GX's pandas
  datasource.

GX writes nothing at run time: validation results stay in memory (see ``gx/great_expectations.yml``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loaders.common.warehouse import ROOT, ConfigurationError, redact, register_secret

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.core import ExpectationValidationResult
    from great_expectations.data_context import AbstractDataContext

    from loaders.common.warehouse import Warehouse

GX_DIR: Path = ROOT / "gx"
MARTS_SCHEMA = "marts"
#: The substitution variable ``gx/great_expectations.yml`` reads the PostgreSQL URL from.
POSTGRES_URL_VARIABLE = "ELT_GX_POSTGRES_URL"
POSTGRES_DATASOURCE = "postgres_marts"

_MAX_EXAMPLES = 3
_MAX_EXAMPLE_CHARS = 60
# Keyword arguments that say where an expectation applies or how to report, not what it expects.
_NON_CRITERIA_KWARGS = {
    "column",
    "column_list",
    "column_A",
    "column_B",
    "result_format",
    "catch_exceptions",
    "include_config",
    "batch_id",
    "column_set",  # the mismatched columns are reported instead
    "exact_match",
}


class ExpectationsError(RuntimeError):
    """GX could not run a checkpoint; the message says which and why (secrets redacted)."""


@dataclass
class ExpectationFailure:
    """One expectation that did not pass (or could not be evaluated)."""

    suite: str
    expectation: str
    column: str | None
    details: str

    def line(self) -> str:
        """``suite: expectation(column) failed: details`` on one line."""
        where = f"({self.column})" if self.column else ""
        return f"{self.suite}: {self.expectation}{where} failed: {self.details}"


@dataclass
class ExpectationsResult:
    """The outcome of one run of the mart checks."""

    success: bool
    suites_run: list[str]
    evaluated: int
    failures: list[ExpectationFailure] = field(default_factory=list)
    duration_seconds: float = 0.0

    def message(self) -> str:
        """One line per failure naming suite and expectation, or a one-line summary on success."""
        if self.failures:
            return "\n".join(failure.line() for failure in self.failures)
        if not self.suites_run:
            return "no suites to run: no mart belongs to the selected sources"
        return (
            f"{self.evaluated} expectations in {len(self.suites_run)} suites passed "
            f"({', '.join(self.suites_run)})"
        )


def checked_marts(warehouse: Warehouse) -> dict[str, frozenset[str]]:
    """The marts with a suite (``meta: {expectations: true}``), by name, with the dbt sources each is
    built from."""
    from flows.manifest import declaring

    return {model.name: model.sources for model in declaring(warehouse, "expectations")}


def marts_of(warehouse: Warehouse, sources: Collection[str] | None = None) -> list[str]:
    """The checked marts built from ``sources`` (dbt source names such as ``sales``), by name; all of
    them for None. Names without marts (``audit``, say) select nothing."""
    marts = checked_marts(warehouse)
    if sources is None:
        return list(marts)
    selected = {sources} if isinstance(sources, str) else set(sources)
    return [mart for mart, built_from in marts.items() if built_from & selected]


def run_expectations(
    warehouse: Warehouse, sources: Collection[str] | None = None, waiting: Collection[str] = ()
) -> ExpectationsResult:
    """Run the suites of the marts of ``sources`` (all marts for None) against ``warehouse`` and
    return what passed and what failed.

    A selected mart missing from the warehouse is reported as a failure (build the marts with
    ``dbt build`` first), unless its source is ``waiting`` for a table no load has created yet (then
    dbt skipped the mart, and so does this). Raises :class:`ConfigurationError` when the warehouse
    cannot be reached and :class:`ExpectationsError` when GX itself fails to run a checkpoint.
    """
    started = time.perf_counter()
    failures: list[ExpectationFailure] = []
    built_from = checked_marts(warehouse)
    marts = marts_of(warehouse, sources)
    if warehouse.target == "duckdb":
        frames = _read_duckdb_marts(warehouse, marts)
        present = [mart for mart in marts if mart in frames]
        runtime_environment: dict[str, str] = {}
    else:
        register_secret(warehouse.pg_password)
        frames = {}
        present = _existing_marts(warehouse, marts)
        runtime_environment = {POSTGRES_URL_VARIABLE: warehouse.sqlalchemy_url()}
    for mart in marts:
        if mart not in present and not built_from[mart] & set(waiting):
            failures.append(
                ExpectationFailure(
                    suite=mart,
                    expectation="table_exists",
                    column=None,
                    details=f"{MARTS_SCHEMA}.{mart} not found in {warehouse.describe()}: "
                    "build the marts first (dbt build)",
                )
            )

    evaluated = 0
    context = _file_context(runtime_environment)
    try:
        for mart in present:
            for result in _run_checkpoint(context, mart, warehouse.target, frames.pop(mart, None)):
                evaluated += 1
                if not result.success:
                    failures.append(_failure(mart, result))
    finally:
        if warehouse.target == "postgres":
            _dispose_engine(context)

    return ExpectationsResult(
        success=not failures,
        suites_run=present,
        evaluated=evaluated,
        failures=failures,
        duration_seconds=round(time.perf_counter() - started, 3),
    )


def _file_context(runtime_environment: dict[str, str]) -> AbstractDataContext:
    # Without great_expectations.yml, GX would scaffold a new project in its place: refuse.
    if not (GX_DIR / "great_expectations.yml").is_file():
        raise ConfigurationError(
            f"GX file context not found at {GX_DIR}: run from a checkout of the project "
            "(the suites and checkpoints live in gx/)"
        )
    import great_expectations as gx

    return gx.get_context(mode="file", context_root_dir=str(GX_DIR), runtime_environment=runtime_environment)


def _read_duckdb_marts(warehouse: Warehouse, marts: list[str]) -> dict[str, pd.DataFrame]:
    """Each of ``marts`` present as a dataframe; the DuckDB connection is closed on return."""
    assert warehouse.duckdb_path is not None
    if not warehouse.duckdb_path.exists():
        raise ConfigurationError(
            f"DuckDB warehouse {warehouse.duckdb_path} not found: run `elt run` (or dbt build) "
            "first, or point ELT_DUCKDB_PATH at the warehouse file"
        )
    # A connection with the default configuration, like dlt's and dbt's in the same process:
    # a read-only one would clash with a writer still open there.
    with warehouse.connect() as conn:
        present = _tables_in_marts(conn, warehouse.paramstyle)
        return {
            mart: conn.sql(f'select * from {MARTS_SCHEMA}."{mart}"').df() for mart in marts if mart in present
        }


def _existing_marts(warehouse: Warehouse, marts: list[str]) -> list[str]:
    with warehouse.connect() as conn:
        present = _tables_in_marts(conn, warehouse.paramstyle)
    return [mart for mart in marts if mart in present]


def _tables_in_marts(conn: Any, paramstyle: str) -> set[str]:
    cursor = conn.cursor()
    cursor.execute(
        "select table_name from information_schema.tables "
        f"where table_schema = {paramstyle}",  # the driver's placeholder, not a value
        (MARTS_SCHEMA,),
    )
    return {str(row[0]) for row in cursor.fetchall()}


def _run_checkpoint(
    context: AbstractDataContext, mart: str, target: str, frame: pd.DataFrame | None
) -> Iterator[ExpectationValidationResult]:
    """Run checkpoint ``<mart>__<target>``; yield its expectation results in suite order."""
    name = f"{mart}__{target}"
    try:
        checkpoint = context.checkpoints.get(name)
        batch_parameters = {"dataframe": frame} if frame is not None else None
        checkpoint_result = checkpoint.run(batch_parameters=batch_parameters)
    except Exception as exc:
        raise ExpectationsError(
            f"GX checkpoint {name} (gx/checkpoints/{name}.json) could not run: "
            f"{type(exc).__name__}: {redact(str(exc))}"
        ) from None
    for suite_result in checkpoint_result.run_results.values():
        order = {
            str(expectation.id): index
            for index, expectation in enumerate(context.suites.get(mart).expectations)
        }
        yield from sorted(
            suite_result.results,
            key=lambda result: order.get(str(result.expectation_config.id), len(order)),
        )


def _dispose_engine(context: AbstractDataContext) -> None:
    """Close the pooled PostgreSQL connections GX opened, so none outlives the run."""
    with contextlib.suppress(Exception):  # never mask the checks' outcome
        datasource = context.data_sources.get(POSTGRES_DATASOURCE)
        datasource.get_execution_engine().engine.dispose()


def _failure(suite: str, result: ExpectationValidationResult) -> ExpectationFailure:
    config = result.expectation_config
    kwargs = dict(config.kwargs)
    return ExpectationFailure(
        suite=suite,
        expectation=config.type,
        column=_columns(kwargs),
        details=_details(result, kwargs),
    )


def _columns(kwargs: dict[str, Any]) -> str | None:
    if kwargs.get("column"):
        return str(kwargs["column"])
    if kwargs.get("column_list"):
        return ", ".join(str(column) for column in kwargs["column_list"])
    if kwargs.get("column_A") and kwargs.get("column_B"):
        return f"{kwargs['column_A']}, {kwargs['column_B']}"
    return None


def _details(result: ExpectationValidationResult, kwargs: dict[str, Any]) -> str:
    errors = _exception_messages(result.exception_info or {})
    if errors:
        return " ".join(redact(f"raised an error: {'; '.join(errors)}").split())
    outcome = result.result or {}
    expected = _expected(kwargs)
    if "unexpected_count" in outcome:
        text = f"{outcome['unexpected_count']} unexpected value(s)"
        if outcome.get("element_count") is not None:
            text += f" of {outcome['element_count']} row(s)"
        examples = [
            _short(value)
            for value in outcome.get("partial_unexpected_list") or []
            if not _is_null(value)  # nulls say nothing more than the count
        ]
        if examples:
            text += f" (e.g. {', '.join(examples[:_MAX_EXAMPLES])})"
    else:
        mismatched = (outcome.get("details") or {}).get("mismatched")
        if isinstance(mismatched, dict) and mismatched:
            text = "; ".join(f"{kind} columns {sorted(cols)}" for kind, cols in mismatched.items())
        else:
            text = f"observed {_short(outcome.get('observed_value'))}"
    text = f"{text}; expected {expected}" if expected else text
    return " ".join(text.split())  # one line per failure, whatever GX put in


def _exception_messages(info: dict[str, Any]) -> list[str]:
    """GX reports errors either flat or keyed by the metric that raised them."""
    if info.get("raised_exception"):
        return [str(info.get("exception_message") or "unknown error")]
    messages: list[str] = []
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            message = str(value.get("exception_message") or "unknown error")
            if message not in messages:
                messages.append(message)
    return messages


def _expected(kwargs: dict[str, Any]) -> str:
    criteria = {
        key: value for key, value in kwargs.items() if key not in _NON_CRITERIA_KWARGS and value is not None
    }
    return ", ".join(f"{key}={_short(value)}" for key, value in criteria.items())


def _is_null(value: Any) -> bool:
    try:
        return value is None or bool(value != value)  # NaN is the one value unequal to itself
    except (TypeError, ValueError):
        return True  # pandas.NA refuses to be a bool


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= _MAX_EXAMPLE_CHARS else text[: _MAX_EXAMPLE_CHARS - 3] + "..."
