"""The demo generator: deterministic, canonical, and its planted drivers really move purchases."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import ibis
import pyarrow.parquet as pq
import pytest

from likely.data import schema as s
from likely.data.demo import generate
from likely.engine import connect


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("demo"), profiles=3000, days=120, seed=3)


def _digest(path) -> str:
    table = pq.read_table(path)
    table = table.sort_by([(c, "ascending") for c in ("profile_id", "timestamp", "event_type")])
    return hashlib.sha256(table.to_pandas().to_csv(index=False).encode()).hexdigest()


def test_same_seed_same_data_other_seed_other_data(tmp_path, demo):
    again = generate(tmp_path / "a", profiles=3000, days=120, seed=3)
    other = generate(tmp_path / "b", profiles=3000, days=120, seed=4)
    assert _digest(again.events_path) == _digest(demo.events_path)
    assert _digest(other.events_path) != _digest(demo.events_path)


def test_canonical_schema_and_event_types(demo):
    table = pq.read_table(demo.events_path)
    assert table.schema.field(s.TIMESTAMP).type.unit == "us"
    assert table.schema.field(s.VALUE).type == "double"
    df = table.select([s.EVENT_TYPE, s.VALUE]).to_pandas()
    expected = {s.PURCHASE, s.PRODUCT_VIEW, s.CART_ADD, s.CHECKOUT, s.PAGE_VIEW, s.LINK_CLICK,
                s.EMAIL_SENT, s.EMAIL_OPENED, s.EMAIL_CLICKED, s.APP_LAUNCH, s.SEARCH}
    assert set(df[s.EVENT_TYPE]) == expected
    purchases = df[s.EVENT_TYPE] == s.PURCHASE
    assert df[purchases][s.VALUE].notna().all() and df[~purchases][s.VALUE].isna().all()
    profiles = pq.read_table(demo.profiles_path).to_pandas()
    assert {"loyalty_tier", "country", "signup_date", "age_band", "email_opt_in"} <= set(
        profiles.columns)
    assert len(profiles) == demo.profiles


def test_activity_is_heavy_tailed_and_emails_come_from_the_company(demo):
    con = connect()
    events = con.read_parquet(str(demo.events_path))
    per = events.group_by(s.PROFILE_ID).aggregate(n=events.count()).n.execute()
    assert per.quantile(0.99) > 4 * per.median()
    # Every open follows a send to that profile earlier the same day or before.
    sends = events.filter(events.event_type == s.EMAIL_SENT).group_by(s.PROFILE_ID).aggregate(
        first_send=lambda t: t.timestamp.min())
    opens = events.filter(events.event_type == s.EMAIL_OPENED).group_by(s.PROFILE_ID).aggregate(
        first_open=lambda t: t.timestamp.min())
    joined = opens.left_join(sends, s.PROFILE_ID)
    assert int(joined.filter(joined.first_send.isnull() | (joined.first_send > joined.first_open))
               .count().execute()) == 0


def _next_week_purchase_rate(con, demo, driver_type: str) -> tuple[float, float]:
    events = con.read_parquet(str(demo.events_path))
    anchor = ibis.timestamp(f"{demo.start + timedelta(days=80)} 00:00:00")
    week = anchor + ibis.interval(days=7)
    had = events.filter((events.event_type == driver_type) & (events.timestamp < anchor)
                        & (events.timestamp >= anchor - ibis.interval(days=7)))
    active = events.filter((events.timestamp < anchor)
                           & (events.timestamp >= anchor - ibis.interval(days=30)))
    buyers = events.filter((events.event_type == s.PURCHASE) & (events.timestamp >= anchor)
                           & (events.timestamp < week))
    pop = active.select(s.PROFILE_ID).distinct().mutate(
        driver=lambda t: t.profile_id.isin(had.profile_id),
        bought=lambda t: t.profile_id.isin(buyers.profile_id))
    rates = pop.group_by("driver").aggregate(rate=pop.bought.mean()).execute()
    rate = dict(zip(rates.driver, rates.rate, strict=True))
    return rate[True], rate[False]


@pytest.mark.parametrize("driver", [s.CART_ADD, s.PRODUCT_VIEW, s.EMAIL_CLICKED])
def test_planted_drivers_raise_the_purchase_rate(demo, driver):
    with_driver, without = _next_week_purchase_rate(connect(), demo, driver)
    assert with_driver > 1.5 * without


def test_tier_raises_purchases(demo):
    con = connect()
    events = con.read_parquet(str(demo.events_path))
    profiles = con.read_parquet(str(demo.profiles_path))
    buys = events.filter(events.event_type == s.PURCHASE).group_by(s.PROFILE_ID).aggregate(
        n=lambda t: t.count())
    joined = profiles.left_join(buys, s.PROFILE_ID)
    rate = joined.group_by("loyalty_tier").aggregate(
        buys=joined.n.fill_null(0).mean()).execute().set_index("loyalty_tier").buys
    assert rate["platinum"] > rate["gold"] > rate["bronze"]


def test_oracle_is_calibrated_and_informative(demo):
    oracle = pq.read_table(demo.oracle_path).to_pandas()
    truth = json.loads(demo.ground_truth_path.read_text())
    assert len(oracle) == demo.profiles
    assert abs(oracle.probability.mean() - oracle.label.mean()) < 0.02
    assert truth["oracle"]["auc"] > 0.8
    assert [d["event_type"] for d in truth["drivers"]][:2] == [s.CART_ADD, s.PRODUCT_VIEW]


def test_churned_customers_go_quiet(demo):
    con = connect()
    events = con.read_parquet(str(demo.events_path))
    own = events.filter(events.event_type != s.EMAIL_SENT)
    last = own.group_by(s.PROFILE_ID).aggregate(last=own.timestamp.max()).last.execute()
    quiet = (last < last.max() - timedelta(days=45)).mean()
    assert 0.05 < quiet < 0.6  # some, not most, customers have stopped for good
