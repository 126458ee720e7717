"""The runs filter language: parsing, SQL with bound values, hostile input."""

from __future__ import annotations

import duckdb
import pytest

from mlcrawl.catalog.store import ensure_schema
from mlcrawl.serve.filter import Compare, Field, FilterError, compile_filter, parse


@pytest.fixture()
def con():
    con = duckdb.connect(":memory:")
    ensure_schema(con)
    runs = [("mlflow:a", "mlflow", "exp1"), ("lightning:b", "lightning", "exp1"), ("mlflow:c", "mlflow", "exp2")]
    for run_id, source, exp in runs:
        con.execute("INSERT INTO runs (root, run_id, source, experiment, crawl_id) VALUES ('/r', ?, ?, ?, 1)",
                    [run_id, source, exp])
    con.executemany("INSERT INTO metrics (run_id, key, value, step) VALUES (?, ?, ?, ?)",
                    [("mlflow:a", "accuracy", 0.5, 0), ("mlflow:a", "accuracy", 0.95, 1),
                     ("lightning:b", "accuracy", 0.8, 0), ("mlflow:c", "loss/train", 0.1, 0)])
    con.executemany("INSERT INTO params (run_id, key, value, value_num, crawl_id) VALUES (?, ?, ?, ?, 1)",
                    [("mlflow:a", "lr", "0.01", 0.01), ("lightning:b", "lr", "0.1", 0.1),
                     ("mlflow:c", "model.depth", "4", 4.0)])
    con.executemany("INSERT INTO tags (run_id, key, value) VALUES (?, ?, ?)",
                    [("mlflow:a", "stage", "dev"), ("lightning:b", "stage", "prod")])
    return con


def matching(con, text: str) -> list[str]:
    where, params = compile_filter(text)
    return [r for (r,) in con.execute(f"SELECT run_id FROM runs r WHERE {where} ORDER BY run_id", params).fetchall()]


def test_comparisons_on_every_family(con):
    assert matching(con, "metrics.accuracy > 0.9") == ["mlflow:a"]  # the latest point, not any point
    assert matching(con, "params.lr = '0.01'") == ["mlflow:a"]
    assert matching(con, "params.lr < 0.05") == ["mlflow:a"]
    assert matching(con, "source = 'lightning'") == ["lightning:b"]
    assert matching(con, "tags.stage != 'dev'") == ["lightning:b", "mlflow:c"]  # absent counts as different
    assert matching(con, "params.model.depth >= 4") == ["mlflow:c"]
    assert matching(con, "metrics.`loss/train` < 1") == ["mlflow:c"]
    assert matching(con, "experiment like 'exp%' and not source = 'mlflow'") == ["lightning:b"]
    assert matching(con, "(source = 'lightning' or metrics.accuracy > 0.9) and tags.stage is not null") == [
        "lightning:b", "mlflow:a"]
    assert matching(con, "") == ["lightning:b", "mlflow:a", "mlflow:c"]


def test_the_example_of_the_issue_parses_into_bound_sql():
    text = "metrics.accuracy > 0.9 and params.lr = '0.01' and source = 'lightning' and tags.stage != 'dev'"
    where, params = compile_filter(text)
    assert "0.9" not in where and "lightning" not in where and "dev" not in where
    assert params == ["accuracy", 0.9, "lr", "0.01", "lightning", "stage", "dev"]
    assert parse("name = 'it''s'") == Compare(Field("run", "name"), "=", "it's")


@pytest.mark.parametrize("text, words", [
    ("name = 'x' OR 1=1 --", "unexpected character '-'"),  # an injection attempt
    ("source = 'a'; DROP TABLE runs", "unexpected character ';'"),
    ("name = 'abc", "unbalanced quote"),
    ('name = "abc', "unbalanced quote"),
    ("x" * 10_000, "at most"),
    ("(" * 50 + "source = 'a'" + ")" * 50, "nested deeper"),
    ("metrics.acc >", "ends"),
    ("metrics.acc 0.9", "operator"),
    ("bogus = 1", "unknown field"),
    ("source = 'a' source = 'b'", "'and', 'or'"),
    ("(source = 'a'", "')'"),
    ("name like 3", "quoted pattern"),
])
def test_hostile_and_broken_filters_are_clear_errors(con, text, words):
    with pytest.raises(FilterError) as caught:
        compile_filter(text)
    assert words in str(caught.value)
    assert con.execute("SELECT count(*) FROM runs").fetchall()[0][0] == 3


def test_injection_inside_a_string_is_only_a_value(con):
    assert matching(con, "name = 'x'' OR ''1''=''1'") == []
    assert matching(con, "params.`lr') OR (1=1` = '1'") == []
    assert con.execute("SELECT count(*) FROM runs").fetchall()[0][0] == 3
