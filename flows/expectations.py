"""Great Expectations checks for the marts, on DuckDB and on PostgreSQL.

Each checked mart describes its checks once, in its dbt YAML (``meta: {expectations: ...}``), and
this module turns that description into a GX suite, a validation definition and a checkpoint for the
warehouse's target, in an ephemeral GX context, on every run. The description says what dbt's tests
and contracts do not (those already check keys, nulls and columns):

.. code-block:: yaml

    meta:
      expectations:
        rows: {min: 1, max_drop: 0.5}              # at least 1 row, and at most 50% fewer than the
                                                   # previous check counted
        newest: {column: loaded_at, max_age_days: 7}  # the newest row is at most 7 days old
        totals:                                    # sums that must reconcile with another relation
          - {column: revenue, equals: sum(total_amount), of: fct_sales, tolerance: 0.01}
        expect:                                    # any GX expectation, by type, with its arguments
          - expect_column_values_to_be_between: {column: quantity, min_value: 1}

``rows.max_drop`` compares with the row count the previous check of the mart recorded (in the
``expectations`` attempt's metadata in ``audit.sync_runs``); the first check has nothing to compare
with. ``totals[].equals`` is an aggregate SQL expression evaluated on ``of`` (a model or seed of the
project, by name); the mart's column must sum to it within ``tolerance`` (default 0).

``run_expectations(warehouse, sources)`` checks the marts built from the given dbt sources only (their
lineage, from dbt's manifest: ``flows.manifest``), so a deployment that never loads a source (a
sales-only one, say) is not failed for that source's missing marts.

- PostgreSQL: GX's SQL (postgres) datasource, so the checks run in the database. The connection
  string reaches GX as a substitution variable (``runtime_environment``), so GX's configuration and
  errors name ``${ELT_GX_POSTGRES_URL}``, never the password.
- DuckDB: GX's SQL engine through duckdb-engine is broken (GX issues #10738 and #11579), so each
  mart is read into a pandas dataframe over one DuckDB connection, which is closed before any
  check runs (the same process writes to the file afterwards), and validated with GX's pandas
  datasource.

GX writes nothing: the context lives in memory and goes with the run.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loaders.common.warehouse import ConfigurationError, redact, register_secret

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.core import ExpectationValidationResult
    from great_expectations.data_context import AbstractDataContext
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    from flows.manifest import Model
    from loaders.common.warehouse import Warehouse

#: The substitution variable the PostgreSQL datasource reads its connection string from.
POSTGRES_URL_VARIABLE = "ELT_GX_POSTGRES_URL"
DOCS_SITE = "reports"  # the Data Docs site, when the caller asks for one
#: How many earlier ``expectations`` attempts are searched for a mart's previous row count.
_HISTORY = 50

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
_DESCRIPTION_KEYS = {"rows", "newest", "totals", "expect"}


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

    def outcome(self, passed: bool = False) -> dict[str, Any]:
        """This expectation as one entry of :attr:`ExpectationsResult.checked`."""
        return {**self.__dict__, "success": passed}


@dataclass
class ExpectationsResult:
    """The outcome of one run of the mart checks."""

    success: bool
    suites_run: list[str]
    evaluated: int
    failures: list[ExpectationFailure] = field(default_factory=list)
    duration_seconds: float = 0.0
    row_counts: dict[str, int] = field(default_factory=dict)  # of the marts checked, for the next run
    # every expectation evaluated, passed or not (suite, expectation, column, success, details): what
    # the dashboard shows (``audit.rpt_expectation_results`` reads it back from the attempt's metadata)
    checked: list[dict[str, Any]] = field(default_factory=list)
    docs_error: str | None = None  # why the Data Docs were not written, when they were asked for

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
    """The marts with a description (``meta: {expectations: ...}``), by name, with the dbt sources
    each is built from."""
    return {model.name: model.sources for model in _described(warehouse).values()}


def marts_of(warehouse: Warehouse, sources: Collection[str] | None = None) -> list[str]:
    """The checked marts built from ``sources`` (dbt source names such as ``sales``), by name; all of
    them for None. Names without marts (``audit``, say) select nothing."""
    marts = checked_marts(warehouse)
    if sources is None:
        return list(marts)
    selected = {sources} if isinstance(sources, str) else set(sources)
    return [mart for mart, built_from in marts.items() if built_from & selected]


def run_expectations(
    warehouse: Warehouse,
    sources: Collection[str] | None = None,
    waiting: Collection[str] = (),
    docs: Path | None = None,
    candidate: bool = False,
) -> ExpectationsResult:
    """Run the suites of the marts of ``sources`` (all marts for None) against ``warehouse`` and
    return what passed and what failed.

    A selected mart missing from the warehouse is reported as a failure (build the marts with
    ``dbt build`` first), unless it is built from a source table (``source.table``) in ``waiting``,
    one no load has created yet (then dbt skipped the mart, and so does this). With ``docs``, the
    check's Data Docs replace the site in that folder (a failure to write them is reported in
    :attr:`ExpectationsResult.docs_error`, and fails nothing). Raises
    :class:`ConfigurationError` when the warehouse cannot be reached or a description is malformed,
    and :class:`ExpectationsError` when GX itself fails to run a checkpoint. With ``candidate``, a
    mart (and a relation its totals read) that has a candidate (``flows.publish``) is checked there.
    """
    started = time.perf_counter()
    described, models = _described(warehouse), _models(warehouse)
    if candidate:
        from flows.publish import in_candidate

        described, models = in_candidate(warehouse, described, models)
    marts = marts_of(warehouse, sources)
    measured = _measure(warehouse, [described[mart] for mart in marts], models)
    failures = [
        ExpectationFailure(
            suite=mart,
            expectation="table_exists",
            column=None,
            details=f"{described[mart].relation} not found in {warehouse.describe()}: "
            "build the marts first (dbt build)",
        )
        for mart in marts
        if mart not in measured.row_counts and not described[mart].source_tables & set(waiting)
    ]
    present = [mart for mart in marts if mart in measured.row_counts]
    previous = _previous_row_counts(warehouse)
    now = datetime.now(UTC)

    checked = [failure.outcome() for failure in failures]
    evaluated = 0
    staging = docs.with_name(f"{docs.name}.{os.getpid()}.partial") if docs else None
    context = _context(warehouse, staging)
    datasources: dict[str, Any] = {}
    try:
        for mart in present:
            suite = suite_for(described[mart], measured, previous.get(mart), now)
            failures.extend(measured.problems.get(mart, []))
            checked.extend(problem.outcome() for problem in measured.problems.get(mart, []))
            frame = measured.frames.pop(mart, None)
            for result in _run_checkpoint(context, warehouse, described[mart], suite, frame, datasources):
                evaluated += 1
                outcome = _in_words(mart, result)
                checked.append(outcome.outcome(passed=bool(result.success)))
                if not result.success:
                    failures.append(outcome)
        docs_error = _build_data_docs(context, staging, docs) if docs and staging else None
    finally:
        _dispose_engines(datasources)

    return ExpectationsResult(
        success=not failures,
        suites_run=present,
        evaluated=evaluated,
        failures=failures,
        duration_seconds=round(time.perf_counter() - started, 3),
        row_counts={mart: measured.row_counts[mart] for mart in present},
        checked=checked,
        docs_error=docs_error,
    )


# --- the description -> a suite ---------------------------------------------------------------


@dataclass
class _Measured:
    """What the suites need from the warehouse before GX runs: row counts and totals, by mart, and
    (DuckDB) the marts as dataframes."""

    row_counts: dict[str, int] = field(default_factory=dict)
    totals: dict[tuple[str, int], float] = field(default_factory=dict)  # (mart, index in totals)
    problems: dict[str, list[ExpectationFailure]] = field(default_factory=dict)
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)


def suite_for(
    model: Model, measured: _Measured, previous_rows: int | None, now: datetime
) -> list[ExpectationConfiguration]:
    """The expectations ``model``'s description stands for, in the description's order (rows,
    expect, totals, newest); those that need an earlier count or a reference total only when there
    is one."""
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    description = _description(model)
    found: list[ExpectationConfiguration] = []

    def add(kind: str, kwargs: dict[str, Any], why: str = "") -> None:
        found.append(ExpectationConfiguration(type=kind, kwargs=kwargs, meta={"why": why} if why else None))

    rows = description.get("rows") or {}
    if "min" in rows or "max" in rows:
        add(
            "expect_table_row_count_to_be_between",
            {"min_value": rows.get("min"), "max_value": rows.get("max")},
        )
    if "max_drop" in rows and previous_rows is not None:
        drop = float(rows["max_drop"])
        add(
            "expect_table_row_count_to_be_between",
            {"min_value": math.ceil(previous_rows * (1 - drop))},
            f"the previous check counted {previous_rows} rows; at most {drop:.0%} fewer allowed",
        )
    for entry in description.get("expect") or []:
        ((kind, kwargs),) = entry.items()
        add(kind, dict(kwargs or {}))
    for index, total in enumerate(description.get("totals") or []):
        expected = measured.totals.get((model.name, index))
        if expected is None:
            continue  # could not be computed: reported among the measured problems
        tolerance = float(total.get("tolerance", 0))
        add(
            "expect_column_sum_to_be_between",
            {"column": total["column"], "min_value": expected - tolerance, "max_value": expected + tolerance},
            f"{total['equals']} of {total['of']} is {expected:g}",
        )
    newest = description.get("newest")
    if newest:
        age = timedelta(
            days=float(newest.get("max_age_days", 0)), hours=float(newest.get("max_age_hours", 0))
        )
        add(
            "expect_column_max_to_be_between",
            {"column": newest["column"], "min_value": now - age},
            f"the newest row at most {_age(age)} old",
        )
    return found


def _description(model: Model) -> dict[str, Any]:
    description = model.meta.get("expectations")
    if not isinstance(description, dict) or not description or set(description) - _DESCRIPTION_KEYS:
        raise ConfigurationError(
            f"meta.expectations of {model.name} must be a mapping with some of "
            f"{sorted(_DESCRIPTION_KEYS)}, got {description!r}"
        )
    for entry in description.get("expect") or []:
        if not (isinstance(entry, dict) and len(entry) == 1 and str(next(iter(entry))).startswith("expect_")):
            raise ConfigurationError(
                f"meta.expectations.expect of {model.name}: each entry is one GX expectation type "
                f"with its arguments (expect_...: {{column: ...}}), got {entry!r}"
            )
    for total in description.get("totals") or []:
        if not (isinstance(total, dict) and {"column", "equals", "of"} <= set(total)):
            raise ConfigurationError(
                f"meta.expectations.totals of {model.name}: each entry needs column, equals and of, "
                f"got {total!r}"
            )
    return description


def _age(age: timedelta) -> str:
    hours = age.total_seconds() / 3600
    return f"{hours / 24:g} days" if hours >= 48 else f"{hours:g} hours"


def _models(warehouse: Warehouse) -> dict[str, Model]:
    from flows.manifest import models

    return models(warehouse)


def _described(warehouse: Warehouse) -> dict[str, Model]:
    from flows.manifest import declaring

    return {model.name: model for model in declaring(warehouse, "expectations")}


# --- the warehouse ------------------------------------------------------------------------------


def _measure(warehouse: Warehouse, marts: list[Model], models: dict[str, Model]) -> _Measured:
    """Row counts of the marts present, the totals their descriptions reconcile with, and (DuckDB)
    the marts as dataframes, over one connection that is closed on return."""
    measured = _Measured()
    if warehouse.target == "duckdb":
        assert warehouse.duckdb_path is not None
        if not warehouse.duckdb_path.exists():
            raise ConfigurationError(
                f"DuckDB warehouse {warehouse.duckdb_path} not found: run `elt run` (or dbt build) "
                "first, or point ELT_DUCKDB_PATH at the warehouse file"
            )
    # A connection with the default configuration, like dlt's and dbt's in the same process: a
    # read-only one would clash with a writer still open there.
    with warehouse.connect() as conn:
        present = _relations(conn.cursor())
        for mart in marts:
            if mart.relation not in present:
                continue
            measured.row_counts[mart.name] = int(
                _scalar(conn, warehouse, f"select count(*) from {mart.relation}")
            )
            for index, total in enumerate(_description(mart).get("totals") or []):
                of = models.get(str(total["of"]))
                try:
                    if of is None or of.relation not in present:
                        raise LookupError(f"not found in {warehouse.describe()}")
                    # the project's own SQL, from the model's YAML
                    value = _scalar(conn, warehouse, f"select {total['equals']} from {of.relation}")
                    measured.totals[(mart.name, index)] = float(value or 0)
                except Exception as exc:  # a column gone, say: this check fails, the others run
                    problem = ExpectationFailure(
                        suite=mart.name,
                        expectation="expect_column_sum_to_be_between",
                        column=str(total["column"]),
                        details=f"cannot compute {total['equals']} of {total['of']}: "
                        + " ".join(redact(str(exc)).split()),
                    )
                    measured.problems.setdefault(mart.name, []).append(problem)
            if warehouse.target == "duckdb":
                measured.frames[mart.name] = conn.sql(f"select * from {mart.relation}").df()
    return measured


def _scalar(conn: Any, warehouse: Warehouse, sql: str) -> Any:
    """The one value ``sql`` selects; after an error, the connection is ready for the next statement
    (both databases refuse more statements in a failed transaction)."""
    cursor = conn.cursor()
    try:
        cursor.execute(sql)
        return cursor.fetchone()[0]
    except Exception:
        conn.rollback()
        if warehouse.target == "duckdb":
            conn.begin()
        raise


def _relations(cursor: Any) -> set[str]:
    cursor.execute("select table_schema, table_name from information_schema.tables")
    return {f"{schema}.{name}" for schema, name in cursor.fetchall()}


def _previous_row_counts(warehouse: Warehouse) -> dict[str, int]:
    """Each mart's row count as the newest earlier check recorded it (none before the first)."""
    if not warehouse.has_table("audit", "sync_runs"):
        return {}
    rows = warehouse.query(
        "select metadata from audit.sync_runs where sync_type = 'expectations' "
        f"and status in ('success', 'error') and metadata like '%row_counts%' "
        f"order by started_at desc limit {_HISTORY}"
    )
    counts: dict[str, int] = {}
    for (metadata,) in rows:
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            for mart, count in (json.loads(metadata).get("row_counts") or {}).items():
                counts.setdefault(mart, int(count))
    return counts


# --- GX ------------------------------------------------------------------------------------------


def _context(warehouse: Warehouse, docs: Path | None = None) -> AbstractDataContext:
    """An in-memory GX context: no analytics, no progress bars, and no files but the Data Docs site
    in ``docs`` when given."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    runtime_environment = {}
    if warehouse.target == "postgres":
        register_secret(warehouse.pg_password)
        runtime_environment[POSTGRES_URL_VARIABLE] = warehouse.sqlalchemy_url()
    sites = {}
    if docs is not None:
        sites[DOCS_SITE] = {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        data_docs_sites=sites,
    )
    return gx.get_context(mode="ephemeral", project_config=config, runtime_environment=runtime_environment)


def _build_data_docs(context: AbstractDataContext, staging: Path, docs: Path) -> str | None:
    """Build the site of this check's suites and results in ``staging``, then put it in place of
    ``docs`` (the previous check's site); None, or why it failed."""
    previous = docs.with_name(f"{docs.name}.{os.getpid()}.previous")
    try:
        context.build_data_docs(site_names=[DOCS_SITE])
        if docs.exists():
            docs.rename(previous)
        staging.rename(docs)
    except Exception as exc:
        return f"{type(exc).__name__}: {redact(str(exc))}"
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(previous, ignore_errors=True)
    return None


def _run_checkpoint(
    context: AbstractDataContext,
    warehouse: Warehouse,
    model: Model,
    expectations: list[ExpectationConfiguration],
    frame: pd.DataFrame | None,
    datasources: dict[str, Any],
) -> Iterator[ExpectationValidationResult]:
    """Run checkpoint ``<mart>__<target>`` with ``expectations`` as its suite; yield its expectation
    results in suite order."""
    import great_expectations as gx

    name = f"{model.name}__{warehouse.target}"
    try:
        batch = _batch_definition(context, warehouse, model, datasources)
        suite = gx.ExpectationSuite(name=model.name)
        for expectation in expectations:
            suite.add_expectation_configuration(expectation)
        suite = context.suites.add(suite)
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch, suite=suite)
        )
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(name=name, validation_definitions=[definition], actions=[], result_format="SUMMARY")
        )
        checkpoint_result = checkpoint.run(
            batch_parameters={"dataframe": frame} if frame is not None else None
        )
    except Exception as exc:
        raise ExpectationsError(
            f"GX checkpoint {name} could not run: {type(exc).__name__}: {redact(str(exc))}"
        ) from None
    order = {str(expectation.id): index for index, expectation in enumerate(suite.expectations)}
    for suite_result in checkpoint_result.run_results.values():
        yield from sorted(
            suite_result.results,
            key=lambda result: order.get(str(result.expectation_config.id), len(order)),
        )


def _batch_definition(
    context: AbstractDataContext, warehouse: Warehouse, model: Model, datasources: dict[str, Any]
) -> Any:
    """The whole mart as one batch: a dataframe asset on DuckDB, a table asset on PostgreSQL (one
    datasource per schema, its search_path that schema), the datasources kept in ``datasources``."""
    schema, table = model.relation.split(".", 1)
    if warehouse.target == "duckdb":
        if "duckdb" not in datasources:
            datasources["duckdb"] = context.data_sources.add_pandas("duckdb_marts")
        asset = datasources["duckdb"].add_dataframe_asset(model.name)
        return asset.add_batch_definition_whole_dataframe("whole_table")
    if schema not in datasources:
        datasources[schema] = context.data_sources.add_postgres(
            f"postgres_{schema}",
            # ELT_GX_POSTGRES_URL always carries a query (?sslmode=...)
            connection_string=f"${{{POSTGRES_URL_VARIABLE}}}&options=-csearch_path%3D{schema}",
        )
    asset = datasources[schema].add_table_asset(model.name, table_name=table)
    return asset.add_batch_definition_whole_table("whole_table")


def _dispose_engines(datasources: dict[str, Any]) -> None:
    """Close the pooled PostgreSQL connections GX opened, so none outlives the run."""
    for datasource in datasources.values():
        if not hasattr(datasource, "get_engine"):
            continue  # a pandas datasource holds no connection
        with contextlib.suppress(Exception):  # never mask the checks' outcome
            datasource.get_execution_engine().engine.dispose()
        with contextlib.suppress(Exception):
            datasource.get_engine().dispose()


def _in_words(suite: str, result: ExpectationValidationResult) -> ExpectationFailure:
    """An evaluated expectation in words (suite, type, columns, what was observed and expected), passed
    or not: a failure when it failed, an entry of ``checked`` either way."""
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
    why = (result.expectation_config.meta or {}).get("why")
    text = f"{text} ({why})" if why else text
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
