"""Shared data concepts of the steps: what identifies a query, how row references are written.

Extract, validate, split, training-data mining and evaluate all compare queries and name source rows; the one
definition lives here so that no step imports another for it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def normalise_query(text: str) -> str:
    """Case-folded, whitespace-collapsed query text: the identity of a query for the split."""
    return " ".join(str(text).split()).casefold()


def normalise_queries(queries: pd.Series) -> pd.Series:
    """:func:`normalise_query` of every row, computed once per distinct query (1M rows hold ~100k queries)."""
    codes, uniques = pd.factorize(queries, use_na_sentinel=False)
    normalised = np.array([normalise_query(q) for q in uniques], dtype=object)
    return pd.Series(normalised[codes], index=queries.index, dtype="string")


def format_refs(refs: Sequence[int | str]) -> str:
    """``[4, 17]`` or ``[a.csv:4, b.csv:17]``: row references as a person reads them."""
    return "[" + ", ".join(str(r) for r in refs) + "]"
