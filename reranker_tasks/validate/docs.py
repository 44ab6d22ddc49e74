"""The GX Data Docs: results rebuilt from the report's allowlist, then rendered into the step's local site.

GX renders from the results in the context's store; :func:`_without_row_values` replaces each stored result with
a copy that holds only counts, source rows and safe observed values before :func:`_build_data_docs` renders them.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reranker_tasks.paths import json_safe
from reranker_tasks.validate.context import _exception_type, _meta
from reranker_tasks.validate.report import _COUNT_FIELDS, _SAFE_OBSERVED
from reranker_tasks.validate.schema import DATA_DOCS_INDEX, DATA_DOCS_SITE, _RowRefs

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuiteValidationResult
    from great_expectations.data_context import AbstractDataContext

# The package's logger, as when this was one module: log settings and filters that name it keep working.
log = logging.getLogger("reranker_tasks.validate")

#: Result fields the Data Docs may render (counts, percentages, source rows, a numeric observed value).
_DOCS_FIELDS = (
    *_COUNT_FIELDS,
    "unexpected_percent_total",
    "unexpected_percent_nonmissing",
    "partial_unexpected_index_list",
)


def _build_data_docs(
    context: AbstractDataContext, docs_dir: Path, refs: Mapping[str, _RowRefs | None]
) -> tuple[str, str]:
    """Render the Data Docs from the stored results, reduced to the allowlist.

    GX's own rendering of a SUMMARY result shows ``partial_unexpected_list`` (row values); the results here have
    none (``exclude_unexpected_values``), and every result is rebuilt from counts, source rows and a numeric
    observed value before rendering, so no row text can reach the HTML (exception messages included).

    Returns:
        The index page and "", or "" and a warning line when the site could not be built.
    """
    store = context.validation_results_store
    try:
        for key in store.list_keys():
            result = store.get(key)
            store.set(key, _without_row_values(result, refs.get(str(result.suite_name))))
        context.build_data_docs(site_names=[DATA_DOCS_SITE])
    except Exception as exc:  # noqa: BLE001 - the docs are a by-product; the checks' outcome stands without them
        return "", f"data_docs: the GX Data Docs could not be built ({type(exc).__name__})"
    index = docs_dir / DATA_DOCS_INDEX
    if not index.is_file():  # pragma: no cover - GX always writes it
        return "", f"data_docs: GX wrote no index page at {index}"
    log.info("GX Data Docs: %s", index)
    return str(index), ""


def _without_row_values(result: ExpectationSuiteValidationResult, refs: _RowRefs | None) -> Any:
    """A copy of the result with only counts, source rows and numeric observed values in each expectation result."""
    clean = copy.deepcopy(result)
    for r in clean.results:
        raw = dict(r.result or {})
        kept: dict[str, Any] = {k: raw[k] for k in _DOCS_FIELDS if k in raw}
        if "partial_unexpected_index_list" in kept:
            positions = [int(i) for i in kept["partial_unexpected_index_list"] if isinstance(i, (int, np.integer))]
            kept["partial_unexpected_index_list"] = refs.refs(positions) if refs is not None else []
        observed = raw.get("observed_value")
        check = _meta(r).get("check")
        if isinstance(observed, (int, float, np.integer, np.floating)) and not isinstance(observed, bool):
            kept["observed_value"] = json_safe(observed)
        elif check in _SAFE_OBSERVED and observed is not None:
            kept["observed_value"] = json_safe(observed)
        details = raw.get("details") or {}
        if check == "columns" and details.get("mismatched"):
            kept["details"] = {"mismatched": json_safe(details["mismatched"])}
        r.result = json_safe(kept)
        info = r.exception_info or {}
        if info.get("raised_exception"):
            r.exception_info = {
                "raised_exception": True,
                "exception_message": f"{_exception_type(info)} (message withheld: it may quote row values)",
                "exception_traceback": None,
            }
    return clean
