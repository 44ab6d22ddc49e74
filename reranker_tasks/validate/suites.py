"""The expectation suites, built in code: ``labeled_pairs`` / ``labeled_pairs_eval`` and the statistics suite.

Also the patterns and dtypes the row checks match, and :func:`check_order`, which reads the order of the checks
off a built suite (so that :func:`pairs_suite` is the one place that order is written down).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from reranker_tasks.config import ValidateConfig
from reranker_tasks.validate.context import _quiet_gx
from reranker_tasks.validate.schema import (
    EVAL_SUITE_NAME,
    EXPECTED_COLUMNS,
    OPTIONAL_COLUMNS,
    STATISTICS_SUITE_NAME,
    SUITE_NAME,
    SkippedCheck,
    _is_numeric,
)
from reranker_tasks.validate.statistics import _demoted, _Statistic

if TYPE_CHECKING:
    import great_expectations as gx
    from great_expectations.expectations.expectation import Expectation


#: A label written as text must read as a number (the extract step strips CSV labels the same way).
NUMBER_TEXT = r"^\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*$"
#: Every character ``str.isspace`` accepts (what Python's ``\s`` matches; U+3000 is the last one), written out:
#: pandas runs a pattern with ``\s`` through Python's ``re`` one row at a time (RE2's ``\s`` misses ``\x0b`` and the
#: Unicode spaces), a class of literal characters through pyarrow's vectorised RE2 (~2.5 s less on 1M ~500-character
#: documents). pandas still takes the slow path for ``$`` when some value of the column holds a newline.
WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())
BLANK_TEXT = f"^[{WHITESPACE}]*$"
NUMERIC_TYPES = ("float64", "float32", "int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8")
#: Checks that only make sense on a numeric label column.
_NUMERIC_LABEL_CHECKS = frozenset({"label_in_range", "label_has_positive", "label_has_negative"})


def pairs_suite(
    columns: Sequence[str],
    label_dtype: Any,
    config: ValidateConfig,
    *,
    eval_set: bool = False,
) -> tuple[gx.ExpectationSuite, list[SkippedCheck]]:
    """Build the row-level expectation suite for a snapshot with the given columns.

    Each expectation carries ``meta["check"]`` (a stable short name), ``meta["describe"]`` (the readable
    argument summary used in failure lines) and ``notes`` (why it exists). The order they are added in is the
    order of the report's entries and of the failure lines (:func:`check_order`).

    Args:
        columns: the snapshot's columns.
        label_dtype: dtype of the ``label`` column (``None`` when it is missing).
        config: thresholds.
        eval_set: the suite for the fixed eval set (named ``labeled_pairs_eval``, without the row count).

    Returns:
        The suite, and the checks left out because a column they need is missing or not numeric.
    """
    _quiet_gx()
    import great_expectations as gx

    # From their defining modules: ``great_expectations.expectations`` re-exports them without ``__all__``,
    # which ``mypy --strict`` (no implicit re-export) rejects.
    from great_expectations.expectations.core.expect_column_max_to_be_between import ExpectColumnMaxToBeBetween
    from great_expectations.expectations.core.expect_column_min_to_be_between import ExpectColumnMinToBeBetween
    from great_expectations.expectations.core.expect_column_values_to_be_between import (
        ExpectColumnValuesToBeBetween,
    )
    from great_expectations.expectations.core.expect_column_values_to_be_in_type_list import (
        ExpectColumnValuesToBeInTypeList,
    )
    from great_expectations.expectations.core.expect_column_values_to_match_regex import (
        ExpectColumnValuesToMatchRegex,
    )
    from great_expectations.expectations.core.expect_column_values_to_not_be_null import (
        ExpectColumnValuesToNotBeNull,
    )
    from great_expectations.expectations.core.expect_column_values_to_not_match_regex import (
        ExpectColumnValuesToNotMatchRegex,
    )
    from great_expectations.expectations.core.expect_table_columns_to_match_set import (
        ExpectTableColumnsToMatchSet,
    )
    from great_expectations.expectations.core.expect_table_row_count_to_be_between import (
        ExpectTableRowCountToBeBetween,
    )

    present = set(columns)
    label_numeric = "label" in present and _is_numeric(label_dtype)
    threshold = config.relevance_threshold
    expectations: list[Expectation] = []
    skipped: list[SkippedCheck] = []

    def add(
        cls: type[Expectation], check: str, describe: str, notes: str, needs: str | None = None, **kwargs: Any
    ) -> None:
        expectation_type = str(cls.expectation_type)
        if needs is not None and needs not in present:
            skipped.append(SkippedCheck(check, expectation_type, needs, f"column {needs!r} is missing"))
        elif needs == "label" and check in _NUMERIC_LABEL_CHECKS and not label_numeric:
            skipped.append(SkippedCheck(check, expectation_type, needs, "column 'label' is not numeric"))
        else:
            expectations.append(cls(meta={"check": check, "describe": describe}, notes=notes, **kwargs))

    column_set = [*EXPECTED_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in present)]
    add(
        ExpectTableColumnsToMatchSet,
        "columns",
        ", ".join(column_set),
        "The snapshot holds query, document, label and source_row (optionally query_id, doc_id, slice and "
        "source_file) and nothing else.",
        column_set=column_set,
        exact_match=True,
    )
    if not eval_set:
        add(
            ExpectTableRowCountToBeBetween,
            "row_count",
            f"min {config.min_rows}",
            "Enough pairs to train on; a zero-row frame would pass every column expectation.",
            min_value=config.min_rows,
        )
    add(
        ExpectColumnValuesToBeInTypeList,
        "label_numeric",
        "label, numeric",
        "Labels are numbers (BCE targets).",
        needs="label",
        column="label",
        type_list=list(NUMERIC_TYPES),
    )
    if "label" in present and isinstance(label_dtype, pd.StringDtype):
        add(
            ExpectColumnValuesToMatchRegex,
            "label_number_text",
            "label, a number",
            "A text label column: names the rows whose text is not a number.",
            needs="label",
            column="label",
            regex=NUMBER_TEXT,
        )
    add(
        ExpectColumnValuesToNotBeNull,
        "label_not_null",
        "label",
        "Every pair has a label; NaN counts as null.",
        needs="label",
        column="label",
    )
    add(
        ExpectColumnValuesToBeBetween,
        "label_in_range",
        "label, 0..1",
        "BCE targets lie in [0, 1]; nulls are skipped here and caught by label_not_null.",
        needs="label",
        column="label",
        min_value=0,
        max_value=1,
    )
    add(
        ExpectColumnMaxToBeBetween,
        "label_has_positive",
        f"label, max >= {threshold}",
        f"At least one relevant pair (label >= relevance_threshold {threshold}).",
        needs="label",
        column="label",
        min_value=threshold,
    )
    add(
        ExpectColumnMinToBeBetween,
        "label_has_negative",
        f"label, min < {threshold}",
        f"At least one irrelevant pair (label < relevance_threshold {threshold}).",
        needs="label",
        column="label",
        max_value=threshold,
        strict_max=True,
    )
    for column in ("query", "document"):
        add(
            ExpectColumnValuesToNotBeNull,
            f"{column}_not_null",
            column,
            f"Every pair has a {column}.",
            needs=column,
            column=column,
        )
        add(
            ExpectColumnValuesToNotMatchRegex,
            f"{column}_not_blank",
            f"{column}, blank",
            f"No empty or whitespace-only {column}; nulls are skipped here and caught by {column}_not_null.",
            needs=column,
            column=column,
            regex=BLANK_TEXT,
        )
    name = EVAL_SUITE_NAME if eval_set else SUITE_NAME
    return gx.ExpectationSuite(name=name, expectations=expectations), skipped


def check_order(suite: gx.ExpectationSuite) -> dict[str, int]:
    """Position of each check in the suite, as :func:`pairs_suite` added them (GX returns results in its own order)."""
    order: dict[str, int] = {}
    for expectation in suite.expectations:
        check = (expectation.meta or {}).get("check")
        if check and str(check) not in order:
            order[str(check)] = len(order)
    return order


def statistics_suite(statistics: Sequence[_Statistic], config: ValidateConfig) -> gx.ExpectationSuite:
    """The suite over the one-row statistics batch: one ``expect_column_max_to_be_between`` per statistic.

    A statistic whose check is named in ``validation_warnings`` gets severity ``warning``.
    """
    _quiet_gx()
    import great_expectations as gx
    from great_expectations.expectations.core.expect_column_max_to_be_between import ExpectColumnMaxToBeBetween

    expectations: list[Expectation] = []
    for stat in statistics:
        warning = _demoted(stat, config)
        bounds = {k: v for k, v in (("min_value", stat.min_value), ("max_value", stat.max_value)) if v is not None}
        expectations.append(
            ExpectColumnMaxToBeBetween(
                column=stat.column,
                severity="warning" if warning else "critical",
                meta={"check": stat.check, "scope": stat.scope},
                notes=(
                    f"Check {stat.check!r} ({stat.scope}): a one-row statistics batch, so the max is the value."
                    + (" Demoted to a warning by validation_warnings." if warning else "")
                ),
                **bounds,
            )
        )
    return gx.ExpectationSuite(name=STATISTICS_SUITE_NAME, expectations=expectations)
