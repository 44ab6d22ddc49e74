"""The Great Expectations runtime: importing GX quietly, the ephemeral context, running a suite, reading a result.

Nothing here knows what the suites check; :mod:`.suites` builds them, :mod:`.run` decides what runs when.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from reranker_tasks.validate.schema import DATA_DOCS_SITE, ROWS_IN_REPORT

if TYPE_CHECKING:
    import great_expectations as gx
    from great_expectations.core import ExpectationSuiteValidationResult
    from great_expectations.data_context import AbstractDataContext

_RESULT_FORMAT: dict[str, Any] = {
    # SUMMARY keeps GX from materialising every unexpected value (COMPLETE would), exclude_unexpected_values drops
    # the partial list of row values and their counts. Row ids: GX's ``unexpected_index_column_names`` builds its
    # index list with a per-row ``.at`` loop over *all* unexpected rows before slicing (~50 s for 1M failing rows),
    # so GX reports 0-based positions of the RangeIndex instead and _RowRefs maps them to source rows.
    "result_format": "SUMMARY",
    "partial_unexpected_count": ROWS_IN_REPORT,
    "exclude_unexpected_values": True,
}


def _gx_context(docs_dir: Path) -> AbstractDataContext:
    """A fresh ephemeral context, progress bars off, with one local Data Docs site at ``docs_dir`` (emptied)."""
    _quiet_gx()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    shutil.rmtree(docs_dir, ignore_errors=True)  # a retried task's site shows this try only
    context.variables.data_docs_sites = {
        DATA_DOCS_SITE: {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir.resolve())},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    }
    return context


def _run_suite(
    context: AbstractDataContext, name: str, frame: pd.DataFrame, suite: gx.ExpectationSuite
) -> ExpectationSuiteValidationResult:
    """Run a suite on a whole-dataframe batch; the result is kept in the context's store for the Data Docs."""
    import great_expectations as gx

    suite = context.suites.add(suite)
    batch_definition = (
        context.data_sources.add_pandas(name).add_dataframe_asset(name).add_batch_definition_whole_dataframe("whole")
    )
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=name, data=batch_definition, suite=suite)
    )
    with _no_batch_fingerprint():
        return definition.run(batch_parameters={"dataframe": frame}, result_format=dict(_RESULT_FORMAT))


@contextlib.contextmanager
def _no_batch_fingerprint() -> Iterator[None]:
    """Skip GX's ``pandas_data_fingerprint`` batch marker: an md5 over ``hash_pandas_object`` of the whole frame.

    GX computes it for every pandas batch below 1e9 bytes; with 1M ~500-character documents it costs ~6 s and is
    used for nothing here (a whole-dataframe batch is named by its asset, not its content).
    """
    from great_expectations.execution_engine import pandas_execution_engine as engine

    previous = getattr(engine, "HASH_THRESHOLD", None)
    if previous is None:  # pragma: no cover - a GX without the marker
        yield
        return
    engine.HASH_THRESHOLD = 0
    try:
        yield
    finally:
        engine.HASH_THRESHOLD = previous


def _quiet_gx() -> None:
    """Import GX with its noise off: INFO lines per context, DeprecationWarnings from its own imports."""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import great_expectations  # noqa: F401
    # This module pins its own logger to INFO ("Created temporary directory ... for ephemeral docs site").
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)


def _meta(result: Any) -> dict[str, Any]:
    return dict(result.expectation_config.meta or {})


def _exception_type(info: Mapping[str, Any]) -> str:
    """The exception's class name from GX's traceback text (its message may quote row values)."""
    lines = str(info.get("exception_traceback") or "").strip().splitlines()
    if lines:
        match = re.match(r"^([A-Za-z_][\w.]*)(:|$)", lines[-1])
        if match:
            return match.group(1).rsplit(".", 1)[-1]
    return "exception"
