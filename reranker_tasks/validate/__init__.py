"""Validate step: Great Expectations suites over the extract snapshot (and the fixed eval set), plus Data Docs.

Three GX 1.x suites run in one ephemeral context:

* ``labeled_pairs`` on the whole snapshot (a pandas batch), what training needs row by row:

  - the columns are ``query``, ``document``, ``label`` and ``source_row``, optionally ``query_id``, ``doc_id``,
    ``slice`` and ``source_file``, and nothing else;
  - at least ``min_rows`` rows (GX passes every column expectation on a zero-row frame);
  - ``label`` is numeric, not null (NaN is null) and within [0, 1] (GX skips nulls in ``between``);
  - both classes are present: some label >= ``relevance_threshold`` and some label below it;
  - ``query`` and ``document`` are not null and not blank (GX skips nulls in regex expectations).

* ``labeled_pairs_eval`` on the fixed eval set, when the extract step wrote one: the same row checks without the
  row count; its failure lines start with ``eval set:``.
* ``labeled_pairs_statistics`` on a one-row batch of dataset statistics that GX cannot compute itself (computed
  here with vectorised pandas / Arrow, checked by GX so that they show in the Data Docs). Check ids:

  - ``max_rows``: rows <= ``max_rows``; read from the Parquet footer, and a larger snapshot is not loaded at all.
  - ``min_queries``: distinct queries, normalised as the split does (``normalise_query``), >= ``min_queries``.
  - ``positive_fraction``: the share of labels >= ``relevance_threshold`` lies in
    [``min_positive_fraction``, ``max_positive_fraction``].
  - ``conflicting_labels``: no (query, document) pair (exact text) carries two different labels (eval set too).
  - ``duplicates``: exact duplicates the extract step dropped / rows it read <= ``max_duplicate_fraction``.
  - ``long_documents``: the share of (query, document) pairs over ``max_length`` tokens <= ``max_long_fraction``.

  ``max_rows`` is always an error; the others may be demoted: a check named in ``validation_warnings`` runs with GX
  severity ``warning``, and its failure is listed in ``warnings`` (summary, report, log) without failing the step.
  Dropped duplicates are always reported, as a warning when below the maximum.

Expectations that depend on a missing column, or on a label column that is not numeric, are left out (and listed as
skipped in the report), so a failure reads as its cause and not as a cascade; so are statistics that the failure of a
row check already explains (no positive fraction when one class is missing).

Token lengths come from the base model's tokenizer (``AutoTokenizer``) on a seeded random sample of at most 20,000
pairs; a tokenizer that cannot be loaded falls back to a whitespace-word estimate, with a warning.

Cost (1M pairs of ~500 characters, 2 cores): about 9 s and 1.9 GB. The work that runs without the GIL (reading, Arrow
kernels, the Rust tokenizer) runs in helper threads beside the imports of GX and transformers (~3 s and ~2 s) and the
GX suite (~2 s; ~2.5 s more when documents hold newlines, see ``BLANK_TEXT``). The Data Docs add ~0.25 s.

Privacy: failure lines, the summary, the JSON report and the Data Docs name expectations, columns, counts and source
rows (the snapshot's 1-based ``source_row``; ``file:row`` with several source files), never a query, document or label
text. GX runs with ``exclude_unexpected_values`` (no partial unexpected list or counts), the report is built from an
allowlist of result fields, and the results the Data Docs render from are reduced to the same allowlist.

Modules, each importing only those listed before it: :mod:`.schema` (column, file, suite and check names;
source-row references), :mod:`.context` (the GX runtime), :mod:`.statistics` (the dataset statistics),
:mod:`.suites` (the suite builders), :mod:`.lengths` (tokenizer lengths), :mod:`.report` (summary, report entries,
failure lines, ``validation.json``), :mod:`.docs` (Data Docs) and :mod:`.run` (:func:`validate_pairs`, the
orchestration).
"""

from __future__ import annotations

from reranker_tasks.validate.lengths import (
    CHARS_PER_TOKEN_CAP,
    LONG_SAMPLE_ROWS,
    LONG_SAMPLE_SEED,
    TOKENIZER_TIMEOUT_S,
)
from reranker_tasks.validate.report import ValidationSummary
from reranker_tasks.validate.run import validate_pairs
from reranker_tasks.validate.schema import (
    CHECK_CONFLICTING_LABELS,
    CHECK_DUPLICATES,
    CHECK_LONG_DOCUMENTS,
    CHECK_MAX_ROWS,
    CHECK_MIN_QUERIES,
    CHECK_POSITIVE_FRACTION,
    DATA_DOCS_DIR,
    DATA_DOCS_SITE,
    EVAL_PREFIX,
    EVAL_SUITE_NAME,
    EXPECTED_COLUMNS,
    FILE_COLUMN,
    OPTIONAL_COLUMNS,
    POSITIVE_THRESHOLD,
    REPORT_FILE,
    REQUIRED_COLUMNS,
    ROW_ID_COLUMN,
    ROWS_IN_MESSAGE,
    ROWS_IN_REPORT,
    STATISTICS_SUITE_NAME,
    SUITE_NAME,
    SkippedCheck,
)
from reranker_tasks.validate.statistics import conflicting_pairs, distinct_queries
from reranker_tasks.validate.suites import (
    BLANK_TEXT,
    NUMBER_TEXT,
    NUMERIC_TYPES,
    WHITESPACE,
    check_order,
    pairs_suite,
    statistics_suite,
)

__all__ = [
    "BLANK_TEXT",
    "CHARS_PER_TOKEN_CAP",
    "CHECK_CONFLICTING_LABELS",
    "CHECK_DUPLICATES",
    "CHECK_LONG_DOCUMENTS",
    "CHECK_MAX_ROWS",
    "CHECK_MIN_QUERIES",
    "CHECK_POSITIVE_FRACTION",
    "DATA_DOCS_DIR",
    "DATA_DOCS_SITE",
    "EVAL_PREFIX",
    "EVAL_SUITE_NAME",
    "EXPECTED_COLUMNS",
    "FILE_COLUMN",
    "LONG_SAMPLE_ROWS",
    "LONG_SAMPLE_SEED",
    "NUMBER_TEXT",
    "NUMERIC_TYPES",
    "OPTIONAL_COLUMNS",
    "POSITIVE_THRESHOLD",
    "REPORT_FILE",
    "REQUIRED_COLUMNS",
    "ROWS_IN_MESSAGE",
    "ROWS_IN_REPORT",
    "ROW_ID_COLUMN",
    "STATISTICS_SUITE_NAME",
    "SUITE_NAME",
    "TOKENIZER_TIMEOUT_S",
    "WHITESPACE",
    "SkippedCheck",
    "ValidationSummary",
    "check_order",
    "conflicting_pairs",
    "distinct_queries",
    "pairs_suite",
    "statistics_suite",
    "validate_pairs",
]
