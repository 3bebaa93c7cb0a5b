"""Conditions: allowed constructs filter a real DuckDB table; everything else is refused."""

from __future__ import annotations

from datetime import datetime

import ibis
import pytest

from likely.conditions import combine, compile_condition, parse_condition
from likely.engine import connect
from likely.errors import ConditionError


@pytest.fixture(scope="module")
def table():
    con = connect()
    data = ibis.memtable({
        "profile_id": ["a", "b", "c", "d"],
        "event_type": ["commerce.purchases", "search", "commerce.purchases", "web"],
        "value": [60.0, None, 20.0, None],
        "channel": ["web", "app", "email", None],
        "page_name": ["pricing-page", "home", None, "Pricing"],
        "timestamp": [datetime(2025, 1, 4, 10), datetime(2025, 1, 5, 23),
                      datetime(2025, 1, 6, 8), datetime(2025, 12, 24, 9)],
        "commerce.order.priceTotal": [120.0, 5.0, 99.0, None],
    })
    return con.create_table("events", data)


def matching(table, text: str) -> list[str]:
    condition = parse_condition(text, table.schema())
    rows = table.filter(compile_condition(condition, table)).order_by("profile_id")
    return rows.profile_id.execute().tolist()


@pytest.mark.parametrize(("text", "expected"), [
    ("event_type = 'commerce.purchases' AND value > 50", ["a"]),
    ("event_type <> 'search'", ["a", "c", "d"]),
    ("channel IN ('web', 'app')", ["a", "b"]),
    ("channel NOT IN ('web')", ["b", "c"]),
    ("page_name LIKE '%pricing%'", ["a"]),
    ("page_name ILIKE '%pricing%'", ["a", "d"]),
    ("page_name NOT LIKE '%pricing%'", ["b", "d"]),
    ("value IS NULL", ["b", "d"]),
    ("value IS NOT NULL", ["a", "c"]),
    ("value BETWEEN 10 AND 30", ["c"]),
    ("value * 2 + 1 > 100", ["a"]),
    ("-value < -30", ["a"]),
    ("NOT (channel = 'web') OR channel IS NULL", ["b", "c", "d"]),
    ("lower(page_name) = 'pricing'", ["d"]),
    ("upper(channel) = 'APP'", ["b"]),
    ("coalesce(channel, 'none') = 'none'", ["d"]),
    ("length(page_name) > 7", ["a"]),
    ("abs(value - 50) < 15", ["a"]),
    ("commerce.order.priceTotal >= 99", ["a", "c"]),
    ('"commerce.order.priceTotal" < 10', ["b"]),
    ("timestamp >= '2025-01-05'", ["b", "c", "d"]),
    ("timestamp < DATE '2025-01-05'", ["a"]),
    ("timestamp > TIMESTAMP '2025-01-05 12:00:00'", ["b", "c", "d"]),
    ("extract(month FROM timestamp) = 12", ["d"]),
    ("date_part('hour', timestamp) >= 10", ["a", "b"]),
    ("extract(dow FROM timestamp) IN (0, 6)", ["a", "b"]),  # 2025-01-04 Sat, 01-05 Sun
    ("year(timestamp) = 2025 AND month(timestamp) = 1 AND day(timestamp) = 6", ["c"]),
    ("hour(timestamp) = 9", ["d"]),
    ("TRUE", ["a", "b", "c", "d"]),
])
def test_allowed_constructs_filter_rows(table, text, expected):
    assert matching(table, text) == expected


@pytest.mark.parametrize(("text", "token"), [
    ("evnt_type = 'search'", "evnt_type"),
    ("1=1; DROP TABLE events", ";"),
    ("event_type = 'a' OR (SELECT 1) = 1", "(SELECT 1)"),
    ("channel IN (SELECT channel FROM events)", "channel IN (SELECT channel FROM events)"),
    ("read_parquet('/etc/passwd') IS NOT NULL", "read_parquet"),  # as written
    ("sleep(1) = 0", "sleep"),
    ("value = 1 -- comment", "--"),
    ("value = 1 /* c */", "/*"),
    ("value + 1", "value + 1"),
    ("", ""),
    ("CAST(value AS VARCHAR) = '1'", "CAST(value AS TEXT)"),
    ("extract(week FROM timestamp) = 1", "week"),
])
def test_refusals_name_the_offending_token(table, text, token):
    with pytest.raises(ConditionError) as err:
        parse_condition(text, table.schema())
    assert err.value.token == token
    assert err.value.condition == text


def test_unknown_column_suggests_the_closest(table):
    with pytest.raises(ConditionError, match=r"Unknown column 'evnt_type' in condition "
                                             r"'evnt_type = 1'. Did you mean 'event_type'\? "
                                             r"Known columns: channel, "):
        parse_condition("evnt_type = 1", table.schema())


def test_syntax_error_is_a_condition_error(table):
    with pytest.raises(ConditionError, match=r"is not valid"):
        parse_condition("value >", table.schema())


def test_columns_are_recorded_and_combine_all_any(table):
    a = parse_condition("value > 10", table.schema())
    b = parse_condition("channel = 'web'", table.schema())
    assert a.columns == frozenset({"value"})
    both = table.filter(combine([a, b], "all", table)).profile_id.execute().tolist()
    either = table.filter(combine([a, b], "any", table)).order_by("profile_id")
    assert both == ["a"] and either.profile_id.execute().tolist() == ["a", "c"]


def test_column_names_alone_are_enough_to_parse():
    assert parse_condition("x = 1", ["x"]).columns == frozenset({"x"})
