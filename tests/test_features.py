"""Features: the Ibis build agrees with a brute-force pandas version, never sees the future, and
the plan is stable and round-trips.

The brute force below is the obvious per-profile Python loop; it reads a feature's meaning from
its FeatureDef (family, source, window) and must agree with ``build_features`` exactly.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime, timedelta

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from likely.conditions import parse_condition
from likely.data.profiles import Profiles
from likely.engine import connect
from likely.errors import ConfigError, DataError
from likely.features import (
    FeaturePlan,
    arrow_frame,
    build_features,
    feature_frame,
    feature_specs,
    plan_features,
)

A1 = datetime(2025, 6, 1)  # the main anchor (midnight, like a run's cutoff)
A2 = datetime(2025, 4, 15, 12, 30)  # an earlier anchor that is not at midnight
DAY = timedelta(days=1)
PURCHASE, VIEW, PAGE = "commerce.purchases", "commerce.productViews", "web.webpagedetails.pageViews"
CUSTOM = {  # name -> (condition, the same rule in pandas)
    "viewed pricing page": ("page_name = 'pricing'", lambda e: e["page_name"] == "pricing"),
    "big purchase": (f"event_type = '{PURCHASE}' AND value >= 100",
                     lambda e: (e["event_type"] == PURCHASE) & (e["value"] >= 100)),
}
POPULATION = ["p1", "p2", "p3", "p4", "p5", "p6"]


def _event(pid, at, event_type, value=None, page=None, category=None, device=None, sku=None):
    return {"profile_id": pid, "timestamp": at, "event_type": event_type, "value": value,
            "page_name": page, "category": category, "device.type": device, "sku": sku}


def _events() -> pd.DataFrame:
    """A few dozen events around A1 and A2, boundaries included."""
    rows = [
        # p1: busy buyer; events exactly on the 7/30/90-day edges and exactly AT the anchor.
        _event("p1", A1 - timedelta(hours=3), VIEW, category="shoes", device="ios"),
        _event("p1", A1 - timedelta(days=1, seconds=1), PURCHASE, 150.0, category="shoes",
               device="ios", sku="s-1"),
        _event("p1", A1 - 7 * DAY, VIEW, category="shoes", device="web"),
        _event("p1", A1 - 7 * DAY + timedelta(microseconds=500), PAGE, page="pricing",
               device="web"),
        _event("p1", A1 - 30 * DAY, PURCHASE, 20.5, category="hats", device="web", sku="h-1"),
        _event("p1", A1 - 30 * DAY - timedelta(seconds=1), VIEW, category="hats"),
        _event("p1", A1 - 90 * DAY, PAGE, page="home", device="android"),
        _event("p1", A1 - 200 * DAY, PURCHASE, None, category="bags", sku="b-1"),
        _event("p1", A1 - 400 * DAY, VIEW, category="shoes"),
        _event("p1", A1, PURCHASE, 999.0, category="shoes", device="ios"),  # at the anchor
        _event("p1", A1 + 2 * DAY, VIEW, category="bags", device="ios"),  # after it
        # p2: browses, never buys, one event with no type, same calendar day twice.
        _event("p2", A1 - timedelta(days=2, hours=1), PAGE, page="pricing", device="web"),
        _event("p2", A1 - timedelta(days=2, hours=5), PAGE, page="home", device="web"),
        _event("p2", A1 - 15 * DAY, VIEW, category="bags", device="web"),
        _event("p2", A1 - 15 * DAY, None, device="web"),
        _event("p2", A1 - 60 * DAY, PAGE, page="pricing"),
        _event("p2", A2 - timedelta(minutes=1), PURCHASE, 40.0, category="bags", device="web"),
        _event("p2", A2, VIEW, category="bags", device="web"),  # at the second anchor
        _event("p2", A1 - 5 * DAY, "application.launches", device="ios"),  # new after A2
        # p3: lapsed: only old activity, plus a small purchase without category.
        _event("p3", A1 - 120 * DAY, PURCHASE, 10.25, device="android"),
        _event("p3", A1 - 150 * DAY, VIEW, category="shoes", device="android"),
        _event("p3", A1 - 366 * DAY, PAGE, page="pricing", device="android"),
        _event("p3", A1 - 365 * DAY, PAGE, page="help", device="android"),
        # p4: only events at or after A1.
        _event("p4", A1, PURCHASE, 300.0, category="hats", device="ios"),
        _event("p4", A1 + 10 * DAY, VIEW, category="hats", device="ios"),
        # p5 has no events at all; p6 has a profile row only. Someone outside the population:
        _event("zz", A1 - 3 * DAY, PURCHASE, 500.0, category="shoes", device="ios"),
        _event("zz", A2 - 3 * DAY, VIEW, category="hats", device="web"),
    ]
    # A few more around A2 so the earlier anchor has something to count.
    rows += [_event("p1", A2 - k * DAY, VIEW, category=c, device="web")
             for k, c in [(1, "shoes"), (3, "hats"), (29, "shoes"), (45, "bags")]]
    frame = pd.DataFrame(rows)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"]).astype("datetime64[us]")
    frame["value"] = frame["value"].astype("float64")
    return frame


def _profiles() -> pd.DataFrame:
    rows = [
        # p1: a timeless row, a row stamped before A1 (wins at A1), one after A1 (never seen).
        ("p1", None, "bronze", 31.0, True, date(2020, 1, 15), datetime(2025, 1, 2, 6)),
        ("p1", A1 - 10 * DAY, "gold", 32.0, True, date(2020, 1, 15), datetime(2025, 5, 30)),
        ("p1", A1 + DAY, "platinum", 33.0, False, date(2020, 1, 15), datetime(2025, 6, 2)),
        # p2: stamped only between A2 and A1: unknown at A2, "silver" at A1.
        ("p2", A2 + DAY, "silver", None, False, date(2025, 4, 20), None),
        # p3: timeless only.
        ("p3", None, "bronze", 55.5, None, None, datetime(2024, 12, 31, 23, 59, 59)),
        # p4: a row stamped exactly at A1 (not before it), and one earlier.
        ("p4", A1, "gold", 40.0, True, date(2023, 3, 3), None),
        ("p4", A2 - DAY, "diamond", 41.0, False, date(2023, 3, 3), None),
        # p6: profile without events; zz is not in the population.
        ("p6", None, "bronze", 22.0, False, date(2025, 5, 31), None),
        ("zz", None, "gold", 60.0, True, date(2019, 1, 1), None),
    ]
    frame = pd.DataFrame(rows, columns=["profile_id", "updated_at", "loyalty_tier", "age",
                                        "email_opt_in", "signup_date", "last_login"])
    frame["updated_at"] = pd.to_datetime(frame["updated_at"]).astype("datetime64[us]")
    frame["last_login"] = pd.to_datetime(frame["last_login"]).astype("datetime64[us]")
    frame["email_opt_in"] = frame["email_opt_in"].astype("boolean")
    return frame


def _write(frame: pd.DataFrame, path) -> str:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if "signup_date" in frame:
        table = table.set_column(table.schema.get_field_index("signup_date"), "signup_date",
                                 pa.array(frame["signup_date"].tolist(), pa.date32()))
    pq.write_table(table, path)
    return str(path)


@pytest.fixture(scope="module")
def con():
    return connect()


@pytest.fixture(scope="module")
def data(con, tmp_path_factory):
    folder = tmp_path_factory.mktemp("features")
    events_df, profiles_df = _events(), _profiles()
    events = con.read_parquet(_write(events_df, folder / "events.parquet"))
    profiles = Profiles.of(con.read_parquet(_write(profiles_df, folder / "profiles.parquet")))
    assert profiles.shape == "history"
    population = ibis.memtable({"profile_id": POPULATION})
    return {"events": events, "profiles": profiles, "population": population,
            "events_df": events_df, "profiles_df": profiles_df, "folder": folder}


def _custom(events) -> dict:
    return {name: parse_condition(text, events.schema()) for name, (text, _) in CUSTOM.items()}


def _plan(data, as_of=A1, **kwargs) -> FeaturePlan:
    return plan_features(data["events"], data["profiles"], as_of=as_of,
                         custom_events=_custom(data["events"]), top_values=3, **kwargs)


def _built(plan, data, anchor, events=None, profiles=None) -> pd.DataFrame:
    table = build_features(plan, events if events is not None else data["events"],
                           profiles if profiles is not None else data["profiles"],
                           data["population"], anchor=anchor)
    frame = feature_frame(table, plan)
    return frame.sort_values("profile_id").reset_index(drop=True)


# -- brute force -----------------------------------------------------------------------------


def _days(anchor: datetime, moment) -> float:
    if moment is None or pd.isna(moment):
        return math.nan
    return float(math.floor((anchor - pd.Timestamp(moment).to_pydatetime()).total_seconds()
                            / 86400))


def _profile_row(profiles: pd.DataFrame, pid: str, anchor: datetime) -> dict | None:
    """The version stamped last before the anchor (unstamped = from the start); dates not yet
    reached at the anchor read as missing."""
    rows = profiles[profiles["profile_id"] == pid]
    stamped = rows[rows["updated_at"].notna() & (rows["updated_at"] < anchor)]
    timeless = rows[rows["updated_at"].isna()]
    pick = (stamped.sort_values("updated_at").iloc[-1] if len(stamped)
            else timeless.iloc[0] if len(timeless) else None)
    if pick is None:
        return None
    row = pick.to_dict()
    for column in ("signup_date", "last_login"):
        moment = row[column]
        if moment is not None and not pd.isna(moment) and pd.Timestamp(moment) >= anchor:
            row[column] = None
    return row


def _brute_value(spec, plan, mine: pd.DataFrame, profile: dict | None, anchor: datetime):
    f = spec.feature
    ts = mine["timestamp"]
    within = ts >= anchor - timedelta(days=f.window_days or 0)
    if f.family == "attribute":
        raw = None if profile is None else profile[f.source]
        if raw is None or pd.isna(raw):
            return math.nan if f.kind == "numeric" else None
        if f.id.startswith("days_since."):
            return _days(anchor, datetime.combine(raw, datetime.min.time())
                         if isinstance(raw, date) and not isinstance(raw, datetime) else raw)
        if f.kind == "categorical":
            return raw if raw in f.categories else "other"
        return float(raw)
    if f.family == "monetary":
        values = mine.loc[within, "value"].dropna()
        stat = f.id.split("_")[1]
        if not len(values):
            return 0.0 if stat == "sum" else math.nan
        return float({"sum": values.sum, "mean": values.mean, "max": values.max}[stat]())
    if f.family in ("distinct", "share"):
        recent = mine.loc[ts >= anchor - timedelta(days=90), f.source].dropna()
        if f.family == "distinct":
            return float(recent.nunique())
        return float((recent == spec.value).sum()) / len(recent) if len(recent) else math.nan
    custom = dict(plan.custom_events)
    if f.source in custom:
        chosen = mine[CUSTOM[f.source][1](mine).fillna(False).astype(bool)]
    elif f.source == "all events":
        chosen = mine
    else:
        chosen = mine[mine["event_type"] == f.source]
    cts = chosen["timestamp"]

    def count(days: int) -> float:
        return float((cts >= anchor - timedelta(days=days)).sum())

    if f.family == "count":
        return count(f.window_days)
    if f.family == "trend":
        return count(30) - count(90) / 3
    if f.family == "active_days":
        return float(cts[cts >= anchor - timedelta(days=90)].dt.date.nunique())
    if f.family == "recency":
        return _days(anchor, cts.max()) if len(cts) else math.nan
    if f.family == "first_seen":
        return _days(anchor, cts.min()) if len(cts) else math.nan
    raise AssertionError(f"no brute force for {f}")


def _brute(plan, events: pd.DataFrame, profiles: pd.DataFrame, anchor: datetime) -> pd.DataFrame:
    past = events[events["timestamp"] < anchor]
    specs = {s.feature.id: s for s in feature_specs(plan)}
    rows = []
    for pid in sorted(POPULATION):
        mine = past[past["profile_id"] == pid]
        profile = _profile_row(profiles, pid, anchor)
        rows.append({"profile_id": pid, **{
            f.id: _brute_value(specs[f.id], plan, mine, profile, anchor) for f in plan.features}})
    return pd.DataFrame(rows)


def _assert_same(built: pd.DataFrame, expected: pd.DataFrame, plan: FeaturePlan) -> None:
    assert list(built.columns) == ["profile_id", *plan.ids]
    assert built["profile_id"].tolist() == expected["profile_id"].tolist()
    for f in plan.features:
        got, want = built[f.id], expected[f.id]
        if f.kind == "numeric":
            np.testing.assert_array_equal(got.to_numpy(), want.to_numpy(dtype=float),
                                          err_msg=f.id)
        else:
            assert [None if pd.isna(v) else v for v in got] == \
                [None if pd.isna(v) else v for v in want], f.id


# -- tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("plan_at", "anchor"), [(A1, A1), (A1, A2), (A2, A1)])
def test_build_matches_brute_force(data, plan_at, anchor):
    plan = _plan(data, as_of=plan_at)
    built = _built(plan, data, anchor)
    _assert_same(built, _brute(plan, data["events_df"], data["profiles_df"], anchor), plan)


def test_brute_force_sees_the_edge_cases(data):
    """Guard the fixture: the edges the comparison relies on are really in the data."""
    plan = _plan(data)
    built = _built(plan, data, A1).set_index("profile_id")
    assert built.loc["p1", "count_7d.all_events"] == 4  # 7-day edge in, anchor event out
    assert built.loc["p1", "days_since_last.commerce_purchases"] == 1
    assert built.loc["p4", "count_90d.all_events"] == 0  # only events at/after the anchor
    assert built.loc["p5", "count_30d.all_events"] == 0
    assert math.isnan(built.loc["p5", "days_since_last.all_events"])
    assert built.loc["p1", "value_max_30d"] == 150.0  # the 999 at the anchor is not seen
    assert built.loc["p1", "attribute.loyalty_tier"] == "gold"
    assert built.loc["p4", "attribute.loyalty_tier"] == "diamond"  # the row AT A1 is unseen
    assert pd.isna(built.loc["p2", "attribute.age"])


def test_future_rows_change_nothing(data, con):
    """Events at or after the anchor and profile rows stamped at or after it are invisible."""
    plan = _plan(data)
    before = _built(plan, data, A2)
    future_events = pd.concat([data["events_df"], pd.DataFrame([
        _event(pid, A2 + timedelta(seconds=s), t, 1000.0, "pricing", "shoes", "ios", "s-9")
        for pid in POPULATION for s in (0, 1, 86400 * 5)
        for t in (PURCHASE, VIEW, PAGE, None)])], ignore_index=True)
    future_profiles = pd.concat([data["profiles_df"], pd.DataFrame([
        {"profile_id": pid, "updated_at": A2 + timedelta(seconds=s), "loyalty_tier": "platinum",
         "age": 99.0, "email_opt_in": True, "signup_date": date(2000, 1, 1),
         "last_login": A2 + DAY}
        for pid in POPULATION for s in (0, 60)])], ignore_index=True)
    future_profiles["email_opt_in"] = future_profiles["email_opt_in"].astype("boolean")
    folder = data["folder"]
    events = con.read_parquet(_write(future_events, folder / "future_events.parquet"))
    profiles = Profiles.of(con.read_parquet(_write(future_profiles,
                                                   folder / "future_profiles.parquet")))
    after = _built(plan, data, A2, events=events, profiles=profiles)
    pd.testing.assert_frame_equal(before, after)
    assert not before.equals(_built(plan, data, A2 + timedelta(seconds=2), events, profiles))


def test_plan_is_stable_and_round_trips(data):
    first, second = _plan(data), _plan(data)
    assert first == second
    assert len(set(first.ids)) == len(first.ids)
    assert all(re.fullmatch(r"[a-z0-9_.]+", fid) for fid in first.ids)
    document = json.loads(json.dumps(first.to_dict()))
    assert FeaturePlan.from_dict(document) == first
    assert FeaturePlan.from_dict(document).to_dict() == document


def test_plan_contents(data):
    plan = _plan(data)
    assert plan.event_types == ("application.launches", VIEW, PURCHASE, PAGE)
    assert plan.value
    columns = {c.column: c.values for c in plan.categorical_columns}
    assert set(columns) == {"category", "device.type", "page_name", "sku"}
    assert columns["category"] == ("shoes", "bags", "hats")  # most frequent first
    assert {a.column: a.type for a in plan.attributes} == {
        "loyalty_tier": "categorical", "age": "numeric", "email_opt_in": "boolean",
        "signup_date": "date", "last_login": "date"}
    names = {f.id: f.name for f in plan.features}
    assert names["count_30d.commerce_productviews"] == \
        "Counts of commerce.productViews in last 30 days"
    assert names["days_since_last.commerce_purchases"] == "Days since last commerce.purchases"
    assert names["distinct_90d.category"] == "Number of distinct category values in last 90 days"
    assert names["share_90d.category.shoes"] == "Share of category = 'shoes' in last 90 days"
    assert names["attribute.loyalty_tier"] == "Latest loyalty_tier"
    assert names["days_since.signup_date"] == "Days since signup_date"
    assert plan.feature("attribute.loyalty_tier").kind == "categorical"


def test_plan_looks_only_before_as_of(data):
    """A plan made at A2 knows nothing that appears later (event types, values, tiers)."""
    early = _plan(data, as_of=A2)
    tiers = next(a for a in early.attributes if a.column == "loyalty_tier").categories
    assert set(tiers) == {"bronze", "diamond", "gold", "other"}  # silver: stamped after A2
    assert early.event_types == (VIEW, PURCHASE, PAGE)  # no application.launches yet
    assert "sku" not in [c.column for c in early.categorical_columns]  # 1 value before A2
    later = _built(early, data, A1).set_index("profile_id")
    assert later.loc["p2", "attribute.loyalty_tier"] == "other"  # silver is new at A1
    assert "count_30d.application_launches" not in later.columns


def test_custom_events_are_named(data):
    plan = _plan(data)
    custom = [f for f in plan.features if f.source == "viewed pricing page"]
    assert {f.family for f in custom} == {"count", "recency", "first_seen", "active_days",
                                          "trend"}
    assert "Counts of viewed pricing page in last 30 days" in [f.name for f in custom]
    assert "Days since last big purchase" in [f.name for f in plan.features]
    built = _built(plan, data, A1).set_index("profile_id")
    assert built.loc["p2", "count_90d.custom_viewed_pricing_page"] == 2
    assert built.loc["p1", "count_365d.custom_big_purchase"] == 1  # 999 at the anchor is out


def test_a_custom_event_that_is_an_event_type_replaces_its_features(data):
    """'bought' selects exactly the purchases: one set of features, named by the custom event;
    'big purchase' (purchases of 100 or more) is a subset and keeps both."""
    schema = data["events"].schema()
    custom = {"bought": parse_condition(f"event_type = '{PURCHASE}'", schema),
              "big purchase": parse_condition(CUSTOM["big purchase"][0], schema)}
    plan = plan_features(data["events"], data["profiles"], as_of=A1, custom_events=custom)
    assert plan.merged == ((PURCHASE, "bought"),)
    assert PURCHASE not in plan.event_types and VIEW in plan.event_types
    assert not [f for f in plan.features if f.source == PURCHASE]
    assert "count_30d.custom_bought" in plan.ids and "count_30d.custom_big_purchase" in plan.ids
    assert FeaturePlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    built = _built(plan, data, A1).set_index("profile_id")
    brute = _built(_plan(data), data, A1).set_index("profile_id")
    for window in (7, 30, 90, 365):  # the custom event's counts are the event type's
        assert built[f"count_{window}d.custom_bought"].equals(
            brute[f"count_{window}d.commerce_purchases"].rename(f"count_{window}d.custom_bought"))
    assert built["count_30d.all_events"].equals(brute["count_30d.all_events"])


def test_frames_have_model_dtypes(data):
    plan = _plan(data)
    table = build_features(plan, data["events"], data["profiles"], data["population"],
                           anchor=A1)
    frame = feature_frame(table, plan)
    tier = frame["attribute.loyalty_tier"]
    assert isinstance(tier.dtype, pd.CategoricalDtype)
    assert list(tier.cat.categories) == list(plan.feature("attribute.loyalty_tier").categories)
    numeric = [f.id for f in plan.features if f.kind == "numeric"]
    assert all(frame[c].dtype == np.float64 for c in numeric)
    batch = table.to_pyarrow()
    model_input = arrow_frame(batch, plan)
    assert list(model_input.columns) == plan.ids
    assert model_input.dtypes.equals(frame[plan.ids].dtypes)


def test_column_choice_skips_ids_constants_and_exclusions():
    n = 1100
    events = ibis.memtable(pd.DataFrame({
        "profile_id": [f"p{i % 50}" for i in range(n)],
        "timestamp": pd.date_range("2025-01-01", periods=n, freq="h").astype("datetime64[us]"),
        "event_type": ["a"] * n,
        "order_id": [f"o{i}" for i in range(n)],  # an id: too many values
        "constant": ["x"] * n,
        "channel": ["web", "app", "email", None] * (n // 4),
        "secret": ["y", "n"] * (n // 2),
    }))
    plan = plan_features(events, as_of=datetime(2026, 1, 1), exclude_columns=["secret"])
    assert [c.column for c in plan.categorical_columns] == ["channel"]
    assert not plan.value and not plan.attributes
    limited = plan_features(events, as_of=datetime(2026, 1, 1), max_categorical_columns=0,
                            max_event_types=0)
    assert not limited.categorical_columns and not limited.event_types


def test_errors_name_the_problem(data):
    with pytest.raises(ConfigError, match=r"loyalty_teir.*Did you mean 'loyalty_tier'"):
        _plan(data, profile_attributes=["loyalty_teir"])
    plan = _plan(data, profile_attributes=["age"])
    assert [a.column for a in plan.attributes] == ["age"]
    with pytest.raises(DataError, match="profiles"):
        build_features(plan, data["events"], None, data["population"], anchor=A1)
    with pytest.raises(DataError, match="page_name"):
        build_features(plan, data["events"].drop("page_name"), data["profiles"],
                       data["population"], anchor=A1)


def test_timeless_profiles_duplicates_and_aware_anchor():
    """Profiles without updated_at, a population listing someone twice, a UTC-aware anchor."""
    events = ibis.memtable(pd.DataFrame({
        "profile_id": ["a", "a", "b"],
        "timestamp": pd.to_datetime(["2025-05-30 10:00", "2025-05-31 23:00",
                                     "2025-06-01 00:00"]).astype("datetime64[us]"),
        "event_type": ["x", "x", "x"],
    }))
    profiles = Profiles.of(ibis.memtable({"profile_id": ["a", "b"], "tier": ["gold", "silver"]}),
                           static={"tier"})
    population = ibis.memtable({"profile_id": ["a", "b", "a"]})
    aware = datetime.fromisoformat("2025-06-01T02:00:00+02:00")  # = A1 in UTC
    plan = plan_features(events, profiles, as_of=aware)
    assert [a.column for a in plan.attributes] == ["tier"]
    frame = feature_frame(build_features(plan, events, profiles, population, anchor=aware),
                          plan).sort_values("profile_id").set_index("profile_id")
    assert frame.index.tolist() == ["a", "b"]
    assert frame["count_7d.x"].tolist() == [2.0, 0.0]  # b's event is at the anchor
    assert frame["days_since_first.x"].tolist()[0] == 1.0
    assert frame["attribute.tier"].tolist() == ["gold", "silver"]


def test_foreign_plans_are_refused(data):
    document = _plan(data).to_dict()
    with pytest.raises(DataError, match="version"):
        FeaturePlan.from_dict({**document, "version": 99})
    renamed = {**document, "features": [{**document["features"][0], "id": "count_7d.nothing"}]}
    with pytest.raises(DataError, match=r"count_7d\.nothing"):
        build_features(FeaturePlan.from_dict(renamed), data["events"], data["profiles"],
                       data["population"], anchor=A1)


def test_ids_stay_unique_when_names_slug_alike():
    events = ibis.memtable(pd.DataFrame({
        "profile_id": ["a", "a"],
        "timestamp": pd.to_datetime(["2025-05-01", "2025-05-02"]).astype("datetime64[us]"),
        "event_type": ["Sign.Up", "sign_up"],
    }))
    plan = plan_features(events, as_of=A1)
    assert [f.id for f in plan.features if f.family == "count" and f.window_days == 7] == [
        "count_7d.all_events", "count_7d.sign_up", "count_7d.sign_up_2"]
    frame = feature_frame(build_features(plan, events, None, events.select("profile_id"),
                                         anchor=A1), plan)
    assert frame["count_365d.sign_up"].tolist() == [1.0]
    assert frame["count_365d.sign_up_2"].tolist() == [1.0]


def test_one_event_type_gets_no_repeated_all_events_features():
    """With one event type, 'all events' would repeat that type's features; with a null type or
    a second type they say something of their own."""
    times = pd.to_datetime(["2025-05-01", "2025-05-02", "2025-05-03"]).astype("datetime64[us]")
    only = pd.DataFrame({"profile_id": ["a", "a", "b"], "timestamp": times,
                         "event_type": ["buy", "buy", "buy"]})
    plan = plan_features(ibis.memtable(only), as_of=A1)
    assert not plan.activity and not [f for f in plan.features if f.source == "all events"]
    assert FeaturePlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    frame = feature_frame(build_features(plan, ibis.memtable(only), None,
                                         ibis.memtable({"profile_id": ["a", "b"]}), anchor=A1),
                          plan).sort_values("profile_id")
    assert frame["count_365d.buy"].tolist() == [2.0, 1.0]
    with_null = only.assign(event_type=["buy", "buy", None])
    assert plan_features(ibis.memtable(with_null), as_of=A1).activity


def test_windows_and_tenure_stop_at_what_the_oldest_anchor_can_see(data):
    """With 60 days before the oldest anchor: no 90/365-day windows, 30-day active days and
    shares, no trend, and "days since first" capped at 60 (older means "60 or more"); "days
    since last" is not tenure and stays as it is."""
    plan = _plan(data, history_days=60)
    windows = {f.window_days for f in plan.features if f.window_days and f.family != "rate"}
    assert windows == {7, 30}
    assert not [f for f in plan.features if f.family == "trend"]
    assert "active_days_30d.commerce_purchases" in plan.ids
    assert FeaturePlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    built = _built(plan, data, A1).set_index("profile_id")
    uncapped = _built(_plan(data), data, A1).set_index("profile_id")
    for fid in ("days_since_first.all_events", "days_since_first.commerce_purchases"):
        expected = uncapped[fid].clip(upper=60)  # NaN (never) stays NaN
        pd.testing.assert_series_equal(built[fid], expected, check_names=False)
        assert uncapped[fid].max() > 60
    recency = "days_since_last.commerce_purchases"
    pd.testing.assert_series_equal(built[recency], uncapped[recency])
    # rates per 30 days since first seen stand in for the long counts: 365-day count over the
    # days since first seen (at least 30, at most 365)
    rates = built["rate_365d.commerce_purchases"]
    mine = data["events_df"]
    for pid in POPULATION:
        bought = mine[(mine.profile_id == pid) & (mine.event_type == PURCHASE)
                      & (mine.timestamp < A1) & (mine.timestamp >= A1 - 365 * DAY)]
        seen = _days(A1, bought.timestamp.min()) + 1 if len(bought) else 365
        assert rates[pid] == pytest.approx(len(bought) / min(max(seen, 30), 365) * 30), pid
    assert plan.feature("value_rate_365d").family == "rate"
    counts = _built(plan, data, A1).set_index("profile_id")["active_days_30d.commerce_purchases"]
    recent = mine[(mine.timestamp >= A1 - 30 * DAY) & (mine.timestamp < A1)
                  & (mine.event_type == PURCHASE)]
    assert counts.to_dict() == {p: float(recent[recent.profile_id == p].timestamp.dt.date
                                         .nunique()) for p in POPULATION}


def test_the_calendar_feature_is_the_anchor_month(data):
    plan = _plan(data, calendar=True)
    assert plan.feature("calendar.month").behaviour == "season"
    assert set(_built(plan, data, A1)["calendar.month"]) == {6.0}
    assert set(_built(plan, data, A2)["calendar.month"]) == {4.0}


def test_event_ids_never_become_features():
    events = ibis.memtable(pd.DataFrame({
        "profile_id": ["a", "a", "b"], "event_id": ["o1", "o2", "o3"],
        "timestamp": pd.to_datetime(["2025-05-01", "2025-05-02", "2025-05-03"]),
        "event_type": ["buy", "view", "buy"]}))
    assert not [f for f in plan_features(events, as_of=A1).features if f.source == "event_id"]
