"""Unit tests of the shared data concepts: what identifies a query, how row references are written."""

from __future__ import annotations

import pandas as pd
import pytest

from reranker_tasks.schema import format_refs, normalise_queries, normalise_query


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Reset Password", "reset password"),
        ("  reset \t  password\n", "reset password"),
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),  # casefold, not lower: ß and SS are one query
        ("", ""),
        (7, "7"),
    ],
)
def test_normalise_query_casefolds_and_collapses_whitespace(text, expected) -> None:
    assert normalise_query(text) == expected


def test_normalise_query_keeps_word_boundaries_and_punctuation() -> None:
    assert normalise_query("resetpassword") != normalise_query("reset password")
    assert normalise_query("reset password?") == "reset password?"


def test_normalise_queries_matches_the_scalar_per_row_and_keeps_the_index() -> None:
    queries = pd.Series(["Reset  Password", "reset password", "Export", " reset password ", "Export"],
                        index=[10, 11, 12, 13, 14])
    normalised = normalise_queries(queries)
    assert normalised.tolist() == [normalise_query(q) for q in queries]
    assert normalised.tolist() == ["reset password", "reset password", "export", "reset password", "export"]
    assert normalised.index.tolist() == [10, 11, 12, 13, 14]
    assert normalised.dtype == "string"


def test_normalise_queries_of_an_empty_series() -> None:
    normalised = normalise_queries(pd.Series([], dtype=object))
    assert normalised.empty and normalised.dtype == "string"


@pytest.mark.parametrize(
    ("refs", "expected"),
    [
        ([4, 17], "[4, 17]"),
        (["a.csv:4", "b.csv:17"], "[a.csv:4, b.csv:17]"),
        ((3,), "[3]"),
        ([], "[]"),
    ],
)
def test_format_refs_as_a_person_reads_them(refs, expected) -> None:
    assert format_refs(refs) == expected
