"""The deterministic demo-data generator: retail + web + email + app events with ground truth.

Every customer has a latent engagement level (log-normal, so activity is heavy-tailed), a loyalty
tier, a favourite category, and may go quiet for good (a daily churn hazard). Each simulated day,
alive customers browse in sessions (page views → product views → cart adds → checkouts), more on
weekends and in December, more after clicking an email; the company sends emails every Monday to
opted-in customers (sent events are the company's, not the customer's), which some open and click.

**Ground truth.** The probability that an alive customer purchases on a day is

    p = sigmoid(-5.2 + 0.30·min(product_views_7d, 10) + 1.40·abandoned_cart_14d
                + 0.80·[email_clicks_7d > 0] − 0.012·min(days_since_last_purchase, 180)
                + tier_effect + 0.40·ln(engagement))

with tier_effect = bronze 0, silver 0.25, gold 0.5, platinum 0.8, where
``abandoned_cart_14d`` = 1 when the customer added to cart in the last 14 days and bought
nothing in those days. Drivers are computed from history before the day. A purchase comes with
its own product view, cart add and checkout. ``ground_truth.json`` lists the drivers in order of
per-day effect; ``oracle.parquet`` holds, for the last ``oracle_window_days`` of the data, each
profile's true probability of at least one purchase given its full state at the window's start
(including whether it is still alive, which the data does not show), estimated by re-simulating
the window ``ORACLE_REPLICAS`` times from that state, and whether it actually purchased.

A driver's per-day effect is not its importance for a whole outcome window: a cart add moves the
next 14 days only, while the hidden engagement level and whether a customer is still active
shape every day of it. ``ground_truth.json`` therefore also ranks the drivers (and those two
hidden ones) by how strongly their values at the oracle window's start rank the true
probabilities (|Spearman ρ|), under ``oracle.drivers``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from likely.data import schema as s
from likely.storage import write_json, write_table

TIERS = np.array(["bronze", "silver", "gold", "platinum"])
TIER_SHARE = [0.55, 0.27, 0.13, 0.05]
TIER_EFFECT = np.array([0.0, 0.25, 0.5, 0.8])
CATEGORIES = np.array(["shoes", "shirts", "trousers", "dresses", "jackets", "bags", "hats",
                       "watches", "jewellery", "sportswear", "beauty", "home"])
COUNTRIES = np.array(["US", "GB", "DE", "FR", "ES", "IT", "NL", "SE"])
COUNTRY_SHARE = [0.35, 0.15, 0.14, 0.1, 0.08, 0.08, 0.05, 0.05]
AGE_BANDS = np.array(["18-24", "25-34", "35-44", "45-54", "55+"])
PAGES = np.array(["home", "category", "product", "search", "pricing", "help", "account"])
HOUR_WEIGHTS = np.array([1, 0.5, 0.3, 0.2, 0.2, 0.4, 1, 2, 3, 3.5, 3.5, 3.5, 4, 3.5, 3.2, 3.2,
                         3.5, 4, 5, 6, 6, 5, 3.5, 2], dtype=float)
ORACLE_REPLICAS = 24

INTERCEPT, W_VIEWS, W_ABANDONED, W_CLICK, W_RECENCY, W_ENGAGEMENT = -5.2, 0.30, 1.40, 0.80, \
    -0.012, 0.40

DRIVERS = [
    {"name": "abandoned cart", "event_type": s.CART_ADD, "direction": "+",
     "description": "added to cart in the last 14 days without buying since (+1.40 log-odds)"},
    {"name": "recent product views", "event_type": s.PRODUCT_VIEW, "direction": "+",
     "description": "product views in the last 7 days, capped at 10 (+0.30 log-odds each)"},
    {"name": "days since last purchase", "event_type": s.PURCHASE, "direction": "-",
     "description": "days since the last purchase, capped at 180 (−0.012 log-odds per day)"},
    {"name": "recent email click", "event_type": s.EMAIL_CLICKED, "direction": "+",
     "description": "clicked an email in the last 7 days (+0.80 log-odds)"},
    {"name": "loyalty tier", "event_type": None, "attribute": "loyalty_tier", "direction": "+",
     "description": "bronze 0, silver +0.25, gold +0.5, platinum +0.8 log-odds"},
]


@dataclass(frozen=True)
class DemoData:
    events_path: Path
    profiles_path: Path
    oracle_path: Path
    ground_truth_path: Path
    events: int
    profiles: int
    start: date
    end: date
    oracle_anchor: date
    oracle_window_days: int


@dataclass
class _State:
    """Everything the daily step needs, one array entry per (replica of a) profile."""

    alive: np.ndarray
    engagement: np.ndarray
    tier_effect: np.ndarray
    opt_in: np.ndarray
    active_from: np.ndarray
    last_purchase: np.ndarray      # day index of the last purchase (may be negative)
    views: np.ndarray              # days × M ring buffer of product views
    carts: np.ndarray              # 14 × M ring buffer of cart adds
    buys: np.ndarray               # 14 × M ring buffer of purchases
    clicks: np.ndarray             # 7 × M ring buffer of email clicks

    def tile(self, times: int) -> _State:
        def rep(a: np.ndarray) -> np.ndarray:
            return np.tile(a, times) if a.ndim == 1 else np.tile(a, (1, times))

        return _State(**{k: rep(v).copy() for k, v in self.__dict__.items()})


def generate(
    out_dir: str | Path, *, profiles: int = 10_000, days: int = 180, seed: int = 0,
    start: date = date(2025, 1, 1), oracle_window_days: int = 30,
    progress: Callable[[int, int], None] | None = None,
) -> DemoData:
    """Write events, profiles, oracle and ground truth to ``out_dir``; same seed, same data."""
    if days <= oracle_window_days:
        raise ValueError(f"days ({days}) must exceed oracle_window_days ({oracle_window_days})")
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    people = _profiles(rng, profiles, start, days)
    state = _initial_state(rng, people, profiles)
    anchor_day = days - oracle_window_days
    chunks: list[dict[str, np.ndarray]] = []
    oracle_probability = None
    bought_in_window = np.zeros(profiles, dtype=bool)
    driver_values: dict[str, np.ndarray] = {}
    for day in range(days):
        if day == anchor_day:
            oracle_probability = _oracle(np.random.default_rng(seed + 1), state, start, day,
                                         oracle_window_days)
            driver_values = _driver_values(state, day)
        counts = _step(rng, state, start, day)
        if day >= anchor_day:
            bought_in_window |= counts["purchase"] > 0
        chunks.append(_emit(rng, counts, people, start, day))
        if progress is not None:
            progress(day + 1, days)
    events = _events_table(chunks, start)
    write_table(events, out / "events.parquet")
    write_table(people["table"], out / "profiles.parquet")
    oracle = pa.table({s.PROFILE_ID: people["ids"], "probability": oracle_probability,
                       "label": bought_in_window.astype(np.int8)})
    write_table(oracle, out / "oracle.parquet")
    anchor = start + timedelta(days=anchor_day)
    _write_truth(out, seed, profiles, days, start, anchor, oracle_window_days,
                 oracle_probability, bought_in_window, driver_values)
    return DemoData(out / "events.parquet", out / "profiles.parquet", out / "oracle.parquet",
                    out / "ground_truth.json", events.num_rows, profiles, start,
                    start + timedelta(days=days - 1), anchor, oracle_window_days)


def _profiles(rng: np.random.Generator, n: int, start: date, days: int) -> dict:
    ids = np.array([f"p{i:06d}" for i in range(n)], dtype=object)
    tier = rng.choice(len(TIERS), n, p=TIER_SHARE)
    # Most customers signed up before the data starts; some join during it.
    signup_offset = np.where(rng.random(n) < 0.85, -rng.integers(1, 1500, n),
                             rng.integers(0, max(days - 30, 1), n))
    signup = np.datetime64(start) + signup_offset.astype("timedelta64[D]")
    table = pa.table({
        s.PROFILE_ID: ids,
        "loyalty_tier": TIERS[tier],
        "country": rng.choice(COUNTRIES, n, p=COUNTRY_SHARE),
        "signup_date": pa.array(signup.astype("datetime64[D]"), pa.date32()),
        "age_band": rng.choice(AGE_BANDS, n, p=[0.15, 0.3, 0.25, 0.18, 0.12]),
        "email_opt_in": rng.random(n) < 0.6,
    })
    return {"ids": ids, "tier": tier, "table": table, "signup_offset": signup_offset,
            "favourite": rng.integers(0, len(CATEGORIES), n), "app_user": rng.random(n) < 0.3}


def _initial_state(rng: np.random.Generator, people: dict, n: int) -> _State:
    return _State(
        alive=np.ones(n, dtype=bool),
        engagement=rng.lognormal(0.0, 0.8, n),
        tier_effect=TIER_EFFECT[people["tier"]],
        opt_in=people["table"]["email_opt_in"].to_numpy(),
        active_from=np.maximum(people["signup_offset"], 0),
        last_purchase=-rng.integers(10, 200, n),
        views=np.zeros((7, n), dtype=np.int16),
        carts=np.zeros((14, n), dtype=np.int16),
        buys=np.zeros((14, n), dtype=np.int16),
        clicks=np.zeros((7, n), dtype=np.int16),
    )


def purchase_logit(state: _State, day: int) -> np.ndarray:
    """The documented ground-truth log-odds of a purchase today, from history before today."""
    d = _planted_drivers(state, day)
    return (INTERCEPT + W_VIEWS * d["recent product views"] + W_ABANDONED * d["abandoned cart"]
            + W_CLICK * d["recent email click"] + W_RECENCY * d["days since last purchase"]
            + d["loyalty tier"] + W_ENGAGEMENT * np.log(state.engagement))


def _planted_drivers(state: _State, day: int) -> dict[str, np.ndarray]:
    """Each planted driver's value today, named as in DRIVERS (called every simulated day)."""
    return {
        "abandoned cart": (state.carts.sum(axis=0) > 0) & (state.buys.sum(axis=0) == 0),
        "recent product views": np.minimum(state.views.sum(axis=0), 10),
        "days since last purchase": np.minimum(day - state.last_purchase, 180),
        "recent email click": state.clicks.sum(axis=0) > 0,
        "loyalty tier": state.tier_effect,
    }


def _driver_values(state: _State, day: int) -> dict[str, np.ndarray]:
    """The planted drivers plus the two hidden ones, as numbers, for the oracle's ranking."""
    values = {**_planted_drivers(state, day), "engagement (hidden)": state.engagement,
              "still active (hidden)": state.alive}
    return {name: v.astype(float) for name, v in values.items()}


def _driver_ranking(values: dict[str, np.ndarray], probability: np.ndarray) -> list[dict]:
    from scipy.stats import spearmanr

    ranked = []
    for name, v in values.items():
        rho = float(spearmanr(v, probability).statistic) if np.ptp(v) > 0 else 0.0
        ranked.append({"name": name, "spearman": round(rho, 4),
                       "observable": "hidden" not in name})
    return sorted(ranked, key=lambda d: -abs(d["spearman"]))


def _seasonality(start: date, day: int) -> float:
    today = start + timedelta(days=day)
    weekly = 1.3 if today.weekday() >= 5 else 0.9
    yearly = 1.0 + 0.35 * np.cos(2 * np.pi * (today.timetuple().tm_yday - 355) / 365.25)
    return weekly * yearly


def _step(rng: np.random.Generator, st: _State, start: date, day: int) -> dict[str, np.ndarray]:
    """Simulate one day for every entry of ``st``; returns event counts per kind."""
    m = len(st.alive)
    active = st.alive & (st.active_from <= day)
    st.alive &= ~(active & (rng.random(m) < 0.002 + 0.003 / (st.engagement + 0.3)))
    active &= st.alive
    p_buy = 1 / (1 + np.exp(-purchase_logit(st, day))) * active
    purchase = (rng.random(m) < p_buy).astype(np.int16)
    sent = (st.opt_in & ((start + timedelta(days=day)).weekday() == 0)).astype(np.int16)
    opened = (sent > 0) & (rng.random(m) < np.minimum(0.12 * st.engagement, 0.6)) & active
    clicked = opened & (rng.random(m) < 0.25)
    rate = 0.09 * st.engagement * _seasonality(start, day) * (1 + 2.0 * clicked) * active
    sessions = rng.poisson(rate).astype(np.int16)
    views = rng.poisson(1.2 * sessions).astype(np.int16)
    carts = rng.binomial(views, 0.12).astype(np.int16)
    checkouts = rng.binomial(carts, 0.35).astype(np.int16)
    counts = {
        "purchase": purchase, "sent": sent, "opened": opened.astype(np.int16),
        "clicked": clicked.astype(np.int16), "sessions": sessions,
        "views": views + purchase, "carts": carts + purchase,
        "checkouts": checkouts + purchase,
    }
    slot7, slot14 = day % 7, day % 14
    st.views[slot7] = counts["views"]
    st.clicks[slot7] = counts["clicked"]
    st.carts[slot14] = counts["carts"]
    st.buys[slot14] = purchase
    st.last_purchase = np.where(purchase > 0, day, st.last_purchase)
    return counts


def _oracle(
    rng: np.random.Generator, state: _State, start: date, day: int, window: int
) -> np.ndarray:
    """P(at least one purchase in [day, day + window)) by re-simulating from today's state."""
    n = len(state.alive)
    bought = np.zeros(n, dtype=np.int32)
    per_round = max(1, min(ORACLE_REPLICAS, 2_000_000 // max(n, 1)))
    done = 0
    while done < ORACLE_REPLICAS:
        reps = min(per_round, ORACLE_REPLICAS - done)
        sim = state.tile(reps)
        any_buy = np.zeros(n * reps, dtype=bool)
        for d in range(day, day + window):
            any_buy |= _step(rng, sim, start, d)["purchase"] > 0
        bought += any_buy.reshape(reps, n).sum(axis=0)
        done += reps
    return bought / ORACLE_REPLICAS


def _emit(rng: np.random.Generator, c: dict, people: dict, start: date, day: int) -> dict:
    """Expand today's counts into event rows (arrays), sessions in a daily cycle."""
    kinds = [
        (s.PAGE_VIEW, np.int32(3) * c["sessions"] + c["purchase"]),
        (s.PRODUCT_VIEW, c["views"]), (s.CART_ADD, c["carts"]),
        (s.CHECKOUT, c["checkouts"]), (s.PURCHASE, c["purchase"]),
        (s.LINK_CLICK, rng.binomial(c["sessions"], 0.4)), (s.SEARCH, rng.binomial(c["sessions"],
                                                                                  0.3)),
        (s.APP_LAUNCH, c["sessions"] * people["app_user"]),
        (s.EMAIL_SENT, c["sent"]), (s.EMAIL_OPENED, c["opened"]), (s.EMAIL_CLICKED, c["clicked"]),
    ]
    who, what = [], []
    for i, (_, count) in enumerate(kinds):
        idx = np.repeat(np.arange(len(count)), np.asarray(count, dtype=np.int64))
        who.append(idx)
        what.append(np.full(len(idx), i, dtype=np.int8))
    who_a, what_a = np.concatenate(who), np.concatenate(what)
    hour = rng.choice(24, len(who_a), p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    seconds = hour * 3600 + rng.integers(0, 3600, len(who_a))
    email = what_a >= 8
    seconds = np.where(what_a == 8, 9 * 3600, seconds)  # sends go out at 09:00
    after_send = 9 * 3600 + 60 * what_a.astype(np.int64)
    seconds = np.where(email & (what_a > 8), np.maximum(seconds, after_send), seconds)
    return {"who": who_a, "what": what_a, "seconds": day * 86400 + seconds,
            "kinds": np.array([k for k, _ in kinds], dtype=object)}


def _events_table(chunks: list[dict], start: date) -> pa.Table:
    rng = np.random.default_rng(12345)
    who = np.concatenate([c["who"] for c in chunks])
    what = np.concatenate([c["what"] for c in chunks])
    seconds = np.concatenate([c["seconds"] for c in chunks])
    kinds = chunks[0]["kinds"]
    n = len(who)
    order = np.lexsort((what, seconds, who))
    who, what, seconds = who[order], what[order], seconds[order]
    event_type = kinds[what]
    is_product = np.isin(event_type, [s.PRODUCT_VIEW, s.CART_ADD, s.CHECKOUT, s.PURCHASE])
    category_idx = np.where(rng.random(n) < 0.6, who % len(CATEGORIES),
                            rng.integers(0, len(CATEGORIES), n))
    skus = np.array([f"{c}-{k:03d}" for c in CATEGORIES for k in range(200)], dtype=object)
    category = _lookup(CATEGORIES, category_idx, is_product)
    sku = _lookup(skus, category_idx * 200 + rng.integers(0, 200, n), is_product)
    is_email = np.isin(event_type, [s.EMAIL_SENT, s.EMAIL_OPENED, s.EMAIL_CLICKED])
    channel = np.where(is_email, "email", np.where(event_type == s.APP_LAUNCH, "app", "web"))
    value = np.where(event_type == s.PURCHASE, rng.lognormal(3.6, 0.6, n).round(2), np.nan)
    page = _lookup(PAGES, rng.integers(0, len(PAGES), n), event_type == s.PAGE_VIEW)
    weeks = int(seconds.max() // (7 * 86400)) + 1 if n else 1
    campaigns = np.array([f"cmp-{w:03d}" for w in range(weeks)], dtype=object)
    campaign = _lookup(campaigns, seconds // (7 * 86400), is_email)
    ids = np.array([f"p{i:06d}" for i in range(int(who.max()) + 1 if n else 0)], dtype=object)
    base = np.datetime64(datetime.combine(start, datetime.min.time()), "s")
    return pa.table({
        s.PROFILE_ID: _lookup(ids, who, None),
        s.TIMESTAMP: pa.array(base + seconds.astype("timedelta64[s]"), pa.timestamp("us")),
        s.EVENT_TYPE: pa.array(event_type, pa.string()),
        s.VALUE: pa.array(value, mask=np.isnan(value)),
        "channel": pa.array(channel, pa.string()),
        "category": category,
        "sku": sku,
        "page_name": page,
        "campaign_id": campaign,
    })


def _lookup(values: np.ndarray, index: np.ndarray, mask: np.ndarray | None) -> pa.Array:
    """Strings by index without building millions of Python strings (null where not mask)."""
    indices = pa.array(np.asarray(index, dtype=np.int32),
                       mask=None if mask is None else ~np.asarray(mask, dtype=bool))
    dictionary = pa.array(values.astype(object), pa.string())
    return pa.DictionaryArray.from_arrays(indices, dictionary).cast(pa.string())


def _write_truth(out: Path, seed: int, profiles: int, days: int, start: date, anchor: date,
                 window: int, probability: np.ndarray, label: np.ndarray,
                 driver_values: dict[str, np.ndarray]) -> None:
    from sklearn.metrics import roc_auc_score

    auc = float(roc_auc_score(label, probability)) if 0 < label.sum() < len(label) else None
    write_json({
        "seed": seed, "profiles": profiles, "days": days, "start": start.isoformat(),
        "formula": "p = sigmoid(-5.2 + 0.30*min(product_views_7d,10) + 1.40*abandoned_cart_14d "
                   "+ 0.80*[email_clicks_7d>0] - 0.012*min(days_since_last_purchase,180) "
                   "+ tier_effect + 0.40*ln(engagement))",
        "drivers": DRIVERS,
        "oracle": {"anchor": datetime.combine(anchor, datetime.min.time()).isoformat(),
                   "window_days": window, "replicas": ORACLE_REPLICAS,
                   "mean_probability": float(probability.mean()),
                   "realised_rate": float(label.mean()), "auc": auc,
                   "drivers": _driver_ranking(driver_values, probability)},
    }, out / "ground_truth.json")

