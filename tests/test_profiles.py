"""Profile attributes as known at a date: snapshots, histories, ties, and dates not reached yet."""

from __future__ import annotations

from datetime import date, datetime

import ibis
import pandas as pd
import pytest

from likely.data.profiles import Profiles, profile_shape, shape_report

JAN, FEB, MAR = datetime(2025, 1, 1), datetime(2025, 2, 1), datetime(2025, 3, 1)


def table(rows: list[dict]) -> ibis.Table:
    frame = pd.DataFrame(rows)
    if "updated_at" in frame:
        frame["updated_at"] = pd.to_datetime(frame["updated_at"]).astype("datetime64[us]")
    return ibis.memtable(frame)


def at(profiles: Profiles, moment: datetime) -> dict[str, dict]:
    rows = profiles.at(moment).execute().to_dict("records")
    return {r.pop("profile_id"): {k: (None if pd.isna(v) else v) for k, v in r.items()}
            for r in rows}


HISTORY = [
    {"profile_id": "a", "updated_at": JAN, "tier": "bronze", "orders": 1},
    {"profile_id": "a", "updated_at": FEB, "tier": "silver", "orders": 5},
    {"profile_id": "a", "updated_at": FEB, "tier": "gold", "orders": 2},   # tied with silver
    {"profile_id": "b", "updated_at": MAR, "tier": "gold", "orders": 9},
    {"profile_id": "c", "updated_at": None, "tier": "bronze", "orders": 0},  # from the start
]


def test_shape_is_told_from_the_stamps():
    assert profile_shape(table(HISTORY)) == "history"
    snapshot = [{"profile_id": "a", "updated_at": MAR, "tier": "x"},
                {"profile_id": "b", "updated_at": JAN, "tier": "y"}]
    assert shape_report(table(snapshot)) == {
        "shape": "snapshot", "versioned_profiles": 0, "profiles_with_several_rows": 0,
        "versions_per_profile_max": 1, "rows_per_profile_max": 1}
    unstamped = [{"profile_id": "a", "tier": "x"}, {"profile_id": "a", "tier": "y"}]
    assert shape_report(table(unstamped))["shape"] == "snapshot"
    assert shape_report(table(unstamped))["profiles_with_several_rows"] == 1
    assert shape_report(table(unstamped))["rows_per_profile_max"] == 2


def test_a_history_gives_the_version_valid_at_the_date():
    profiles = Profiles.of(table(HISTORY))
    assert at(profiles, datetime(2025, 1, 15)) == {
        "a": {"tier": "bronze", "orders": 1}, "c": {"tier": "bronze", "orders": 0}}
    later = at(profiles, datetime(2025, 3, 2))
    assert later["b"] == {"tier": "gold", "orders": 9}
    assert later["a"] in ({"tier": "gold", "orders": 2}, {"tier": "silver", "orders": 5})
    # a version stamped exactly at the date is not known yet
    assert "b" not in at(profiles, MAR)
    assert set(profiles.existing_at(MAR).execute().profile_id) == {"a", "c"}


def test_tied_versions_give_one_whole_row_whatever_the_input_order():
    """Ties on updated_at are broken by the other columns: the same row for any row order, and
    never a row mixing two versions' columns."""
    picks = set()
    for order in (HISTORY, HISTORY[::-1], HISTORY[1:] + HISTORY[:1]):
        picks.add(tuple(sorted(at(Profiles.of(table(order)), MAR)["a"].items())))
    assert len(picks) == 1
    assert dict(picks.pop()) in ({"tier": "gold", "orders": 2}, {"tier": "silver", "orders": 5})


def test_a_snapshot_row_holds_at_every_date_whatever_its_stamp():
    """A CRM export stamped "last modified" after a date still describes the profile then."""
    snapshot = Profiles.of(table([{"profile_id": "a", "updated_at": MAR, "tier": "gold"}]),
                           static={"tier"})
    assert at(snapshot, JAN) == {"a": {"tier": "gold"}}
    assert snapshot.describes_the_past("tier") and not snapshot.describes_the_past("other")
    assert set(snapshot.existing_at(JAN).execute().profile_id) == {"a"}


def test_static_attributes_of_a_history_come_from_the_newest_version_before_the_horizon():
    profiles = Profiles.of(table(HISTORY), static={"tier"}, horizon=datetime(2025, 2, 15))
    early = at(profiles, datetime(2025, 1, 15))
    assert early["a"] == {"tier": "gold", "orders": 1}  # tier: the newest (tie → one row)
    assert "b" not in early  # stamped after the horizon: never read


def test_dates_not_reached_yet_read_as_missing():
    rows = [{"profile_id": "a", "signup": date(2025, 2, 1),
             "seen": datetime(2025, 2, 1, 12)}]
    frame = pd.DataFrame(rows)
    frame["seen"] = frame["seen"].astype("datetime64[us]")
    profiles = Profiles.of(ibis.memtable(frame), static={"signup", "seen"})
    assert at(profiles, datetime(2025, 2, 1)) == {"a": {"signup": None, "seen": None}}
    assert at(profiles, datetime(2025, 2, 1, 13))["a"]["seen"] == pd.Timestamp(2025, 2, 1, 12)
    assert at(profiles, datetime(2025, 2, 1, 0, 0, 1))["a"]["signup"] == pd.Timestamp(2025, 2, 1)


@pytest.mark.parametrize("static", [set(), {"tier", "orders"}])
def test_the_id_and_stamp_are_never_attributes(static):
    assert Profiles.of(table(HISTORY), static=static).attributes == ["tier", "orders"]
