"""Analytics against brute force: every analytic, with every filter kind, recomputed in pandas.

A small history is made once: the demo data's instance run at four score dates (max_anchors 2
keeps each run short), a published segment over it, and an instance with no profiles dataset.
pandas reads the runs' scores.parquet files and the profiles directly (the test may; the
library may not) and recomputes each answer; the library's answers must match exactly.
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from likely.errors import ConditionError, ConfigError, NotFoundError
from likely.scoring import records
from likely.workspace import Workspace

DATES = ["2025-05-15", "2025-06-15", "2025-07-01", "2025-07-19"]
INSTANCE = {
    "name": "buyers", "type": "conversion", "description": "Purchase within 30 days.",
    "datasets": {"events": "events", "profiles": "profiles"},
    "goal": {"conditions": ["event_type = 'commerce.purchases'"], "window_days": 30},
    "exclusions": ["event_type = 'directMarketing.emailSent'"],
    "min_positives": 150, "min_negatives": 150, "max_anchors": 2,
}
SEGMENT = ("top fifth", "buyers.percentile >= 80")
WHERE = "loyalty_tier IN ('gold', 'platinum') OR signup_date >= '2025-01-01'"
ORDER = ["High", "Medium", "Low"]
NOT_SCORED = "Not scored"
_BUILT: dict[str, Path] = {}


def build_history(demo_workspace: Path, tmp_path_factory) -> Path:
    """The four-run history of a backfilled instance (built once per test session, shared
    with the web tests)."""
    if "path" not in _BUILT:
        path = tmp_path_factory.mktemp("analytics") / "ws"
        shutil.copytree(demo_workspace, path)
        ws = Workspace(path)
        ws.create_instance(INSTANCE)
        # backfilled first (one model, re-scored a month later), then two scheduled-style runs
        backfilled = ws.backfill("buyers", date.fromisoformat(DATES[0]),
                                 date.fromisoformat(DATES[1]), every_days=31)
        assert [r.as_of for r in backfilled] == DATES[:2]
        for day in DATES[2:]:
            assert ws.run("buyers", as_of=date.fromisoformat(day)).status == "success"
        ws.create_segment(*SEGMENT)
        ws.create_instance({**INSTANCE, "name": "no-profiles",
                            "datasets": {"events": "events"}})
        _BUILT["path"] = path
    return _BUILT["path"]


@pytest.fixture(scope="module")
def ws(demo_workspace, tmp_path_factory) -> Workspace:
    return Workspace(build_history(demo_workspace, tmp_path_factory))


# -- brute force ----------------------------------------------------------------------------------


class Truth:
    """The history, the attributes and the segment in pandas, and each answer recomputed."""

    def __init__(self, ws: Workspace) -> None:
        instance = ws.instance("buyers")
        runs = records.successful_runs(ws.catalog, instance.id)
        assert [r.as_of for r in runs] == DATES
        self.runs = {r.as_of: r.id for r in runs}
        frames = [pd.read_parquet(records.run_dir(ws.path, instance.id, r.id) / "scores.parquet")
                  for r in runs]
        history = pd.concat(frames, ignore_index=True)
        history["score_date"] = pd.to_datetime(history["score_date"]).dt.date.astype(str)
        history["reason"] = history["influential_factors"].map(_top_reason)
        self.history = history.drop(columns=["influential_factors"])
        profiles = ws.table("profiles").to_pandas()  # 3,000 rows: a snapshot, one per profile
        assert not profiles["profile_id"].duplicated().any()
        self.profiles = profiles.set_index("profile_id")
        self.members = set(ws.segment_members(SEGMENT[0]).to_pandas()["profile_id"])

    def attributes(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Each row's attributes as known at the end of its score date (dates after it: null)."""
        known = rows[["profile_id", "score_date"]].join(self.profiles, on="profile_id")
        signup = pd.to_datetime(known["signup_date"])
        later = signup > pd.to_datetime(known["score_date"])
        known["signup_date"] = signup.where(~later)
        return known

    def passes(self, rows: pd.DataFrame, flt: dict) -> pd.Series:
        keep = pd.Series(True, index=rows.index)
        if flt.get("bucket"):
            keep &= rows["bucket"] == flt["bucket"]
        if flt.get("segment"):
            keep &= rows["profile_id"].isin(self.members)
        if flt.get("where"):
            assert flt["where"] == WHERE
            a = self.attributes(rows)
            tier = a["loyalty_tier"].isin(["gold", "platinum"])
            recent = (a["signup_date"] >= pd.Timestamp("2025-01-01")).fillna(False)
            keep &= (tier | recent).to_numpy()
        return keep

    def rows(self, flt: dict, dates=DATES) -> pd.DataFrame:
        h = self.history[self.history["score_date"].isin(dates)]
        return h[self.passes(h, flt)]


def _top_reason(reasons) -> str:
    if reasons is None or len(reasons) == 0 or reasons[0]["behaviour"] is None:
        return "(no reason)"
    return reasons[0]["behaviour"]


@pytest.fixture(scope="module")
def truth(ws) -> Truth:
    return Truth(ws)


FILTERS = {
    "none": {},
    "segment": {"segment": SEGMENT[0]},
    "bucket": {"bucket": "High"},
    "attribute": {"where": WHERE},
    "all three": {"segment": SEGMENT[0], "bucket": "Medium", "where": WHERE},
}


@pytest.fixture(params=list(FILTERS), ids=list(FILTERS))
def flt(request) -> dict:
    return FILTERS[request.param]


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None or (isinstance(b, float) and math.isnan(b)):
        return a is None and (b is None or math.isnan(b))
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


# -- each analytic against brute force, with each filter -----------------------------------------


def test_trend(ws, truth, flt):
    out = ws.analytics("buyers", "trend", **flt)
    assert [d["score_date"] for d in out["dates"]] == DATES
    rows = truth.rows(flt)
    for line in out["dates"]:
        day = rows[rows["score_date"] == line["score_date"]]
        assert line["run_id"] == truth.runs[line["score_date"]]
        assert line["profiles"] == len(day)
        assert line["buckets"] == {b: int((day["bucket"] == b).sum()) for b in ORDER}
        assert close(line["mean_score"], day["score"].mean() if len(day) else None)
        assert close(line["mean_probability"], day["probability"].mean() if len(day) else None)
    json.dumps(out)  # JSON-ready as it is


def _flow_truth(truth: Truth, flt: dict, dates: list[str]) -> dict[tuple, int]:
    """(from date, from, to) -> profiles, for each consecutive pair of ``dates``."""
    h = truth.history
    counts: dict[tuple, int] = {}
    for before, after in itertools.pairwise(dates):
        a = h[h["score_date"] == before][["profile_id", "bucket"]]
        b = h[h["score_date"] == after][["profile_id", "bucket"]]
        both = a.merge(b, on="profile_id", how="outer", suffixes=("_from", "_to"))
        both = both.fillna(NOT_SCORED)
        if flt:
            passing = truth.rows(flt, [before, after])["profile_id"]
            both = both[both["profile_id"].isin(set(passing))]
        for (f, t), n in both.groupby(["bucket_from", "bucket_to"]).size().items():
            counts[(before, f, t)] = int(n)
    return counts


@pytest.mark.parametrize("runs", [None, "all", f"{DATES[0]},{DATES[2]}"])
def test_flow(ws, truth, flt, runs):
    out = ws.analytics("buyers", "flow", runs=runs, **flt)
    dates = {None: DATES[-2:], "all": DATES, f"{DATES[0]},{DATES[2]}": [DATES[0], DATES[2]]}[runs]
    assert [r["score_date"] for r in out["runs"]] == dates
    got = {(t["from_date"], t["from"], t["to"]): t["profiles"] for t in out["transitions"]}
    assert got == _flow_truth(truth, flt, dates)
    for pair in out["pairs"]:
        mine = {(f, t): n for (d, f, t), n in got.items() if d == pair["from"]["score_date"]}
        assert pair["entered"] == sum(n for (f, _), n in mine.items() if f == NOT_SCORED)
        assert pair["left"] == sum(n for (_, t), n in mine.items() if t == NOT_SCORED)
        assert pair["stayed"] + pair["up"] + pair["down"] + pair["entered"] + pair["left"] \
            == pair["profiles"] == sum(mine.values())
    if not flt:  # unfiltered, the entered/left of the newest pair are visible in the data
        last = out["pairs"][-1]
        assert last["entered"] > 0 and last["left"] > 0


@pytest.mark.parametrize("runs", [None, DATES[-2:], "all"])
def test_overlap(ws, truth, flt, runs):
    out = ws.analytics("buyers", "overlap", runs=runs, **flt)
    dates = DATES[-3:] if runs is None else DATES if runs == "all" else DATES[-2:]
    bucket = flt.get("bucket") or "High"
    assert out["bucket"] == bucket
    assert [r["score_date"] for r in out["runs"]] == dates
    rows = truth.rows({**flt, "bucket": bucket}, dates)
    sets = [set(rows[rows["score_date"] == d]["profile_id"]) for d in dates]
    everyone = set().union(*sets)
    regions = {}
    for profile in everyone:
        mask = tuple(profile in s for s in sets)
        regions[mask] = regions.get(mask, 0) + 1
    got = {tuple(r["mask"]): r["profiles"] for r in out["regions"]}
    if len(dates) <= 3:  # a Venn: every region, empty ones too
        assert len(got) == 2 ** len(dates) - 1
    assert {m: n for m, n in got.items() if n} == regions
    assert out["sizes"] == [len(s) for s in sets]
    assert out["union"] == len(everyone)
    assert out["in_all"] == len(set.intersection(*sets))
    if len(dates) > 3:  # UpSet bars: largest first
        counts = [r["profiles"] for r in out["regions"]]
        assert counts == sorted(counts, reverse=True)


@pytest.mark.parametrize("bins", [20, 7])
def test_distribution(ws, truth, flt, bins):
    out = ws.analytics("buyers", "distribution", bins=bins, runs="all", **flt)
    width = 100 / bins
    assert out["edges"][0] == 0 and out["edges"][-1] == 100 and len(out["edges"]) == bins + 1
    rows = truth.rows(flt)
    for hist in out["histograms"]:
        day = rows[rows["score_date"] == hist["score_date"]]
        index = (day["score"] / width).apply(math.floor).clip(upper=bins - 1)
        expected = [int((index == i).sum()) for i in range(bins)]
        assert hist["counts"] == expected
        assert hist["profiles"] == len(day)
        for b in ORDER:
            mine = index[day["bucket"] == b]
            assert hist["by_bucket"][b] == [int((mine == i).sum()) for i in range(bins)]


def test_distribution_defaults_to_the_newest_four_runs(ws):
    out = ws.analytics("buyers", "distribution")
    assert [h["score_date"] for h in out["histograms"]] == DATES[-4:]
    assert len(out["edges"]) == 21


@pytest.mark.parametrize("run", [None, DATES[1]])
def test_reasons(ws, truth, flt, run):
    top = 3
    out = ws.analytics("buyers", "reasons", runs=run, top=top, **flt)
    day = run or DATES[-1]
    assert out["run"] == {"run_id": truth.runs[day], "score_date": day}
    rows = truth.rows(flt, [day])
    totals = {b: int((rows["bucket"] == b).sum()) for b in ORDER}
    assert out["buckets"] == totals and out["profiles"] == len(rows)
    per = rows.groupby("reason").size()
    ranked = sorted(per.items(), key=lambda kv: (-kv[1], kv[0]))
    names = [name for name, _ in ranked[:top]] + (["other reasons"] if len(ranked) > top else [])
    assert [r["reason"] for r in out["reasons"]] == names
    assert out["other_reasons"] == max(0, len(ranked) - top)
    for line in out["reasons"]:
        mine = rows[rows["reason"].isin([line["reason"]] if line["reason"] != "other reasons"
                                         else [n for n, _ in ranked[top:]])]
        assert line["profiles"] == len(mine)
        for b in ORDER:
            n = int((mine["bucket"] == b).sum())
            assert line["by_bucket"][b]["profiles"] == n
            assert close(line["by_bucket"][b]["share_pct"], 100 * n / totals[b] if totals[b]
                         else None)


def _cohort_truth(truth: Truth, flt: dict, attribute: str, top: int):
    rows = truth.rows(flt)
    known = truth.attributes(rows)
    newest = truth.attributes(pd.DataFrame({"profile_id": truth.profiles.index,
                                            "score_date": DATES[-1]}))
    if attribute == "signup_date":
        label = known["signup_date"].dt.strftime("%Y-%m")
        values = sorted(newest["signup_date"].dropna().dt.strftime("%Y-%m").unique())
        kept = values[-top:]
        other = f"before {kept[0]}"
    else:  # text as it is; true/false as the engine writes a boolean
        spell = (lambda v: None if pd.isna(v) else str(v).lower()) if attribute == "email_opt_in" \
            else (lambda v: None if pd.isna(v) else str(v))
        label = known[attribute].map(spell).astype("string")
        sizes = newest[attribute].dropna().map(spell).value_counts()
        ranked = sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))
        values = [v for v, _ in ranked]
        kept = values[:top]
        other = "(other)"
    value = label.where(label.isin(kept), other).where(label.notna(), "(missing)")
    frame = rows.assign(value=value.to_numpy())
    return frame, kept, other, len(values) - len(kept)


@pytest.mark.parametrize(("attribute", "top"), [("loyalty_tier", 12), ("loyalty_tier", 2),
                                                ("signup_date", 6), ("email_opt_in", 5)])
def test_cohorts(ws, truth, flt, attribute, top):
    out = ws.analytics("buyers", "cohorts", attribute=attribute, top=top, **flt)
    frame, kept, other, away = _cohort_truth(truth, flt, attribute, top)
    monthly = attribute == "signup_date"
    assert out["by"] == ("month" if monthly else "value")
    assert out["grouped_values"] == away
    expected_names = ([other] if away and monthly else []) + kept + (
        [other] if away and not monthly else [])
    if (frame["value"] == "(missing)").any():
        expected_names.append("(missing)")
    assert out["values"] == expected_names
    for series in out["series"]:
        mine = frame[frame["value"] == series["value"]]
        assert series["profiles"] == len(mine)
        for point in series["points"]:
            day = mine[mine["score_date"] == point["score_date"]]
            assert point["profiles"] == len(day)
            assert point["buckets"] == {b: int((day["bucket"] == b).sum()) for b in ORDER}
            assert close(point["mean_probability"],
                         day["probability"].mean() if len(day) else None)
            assert close(point["mean_score"], day["score"].mean() if len(day) else None)
            for b in ORDER:
                assert close(point["shares_pct"][b],
                             100 * (day["bucket"] == b).sum() / len(day) if len(day) else None)
    # every filtered row is in exactly one cohort
    assert sum(s["profiles"] for s in out["series"]) == len(frame)


def test_outcomes(ws, flt):
    out = ws.analytics("buyers", "outcomes", **flt)
    performance = ws.performance("buyers")
    assert [r["score_date"] for r in out["measured"]] == ["2025-05-15", "2025-06-15"]
    by_id = {r["run_id"]: r for r in performance["runs"]}
    for run in out["measured"]:
        kept = by_id[run["run_id"]]
        for key in ("profiles", "expected_rate", "actual_rate", "auc", "ece", "buckets",
                    "calibration", "window_end", "measured_by"):
            assert run[key] == kept[key]
        per = {b["bucket"]: b for b in run["buckets"]}
        assert set(per) == set(ORDER)
        assert sum(b["profiles"] for b in run["buckets"]) == run["profiles"]
    assert [p["score_date"] for p in out["pending"]] == DATES[2:]
    assert out["filter_ignored"] is bool(flt)


# -- filters, runs and refusals --------------------------------------------------------------------


def test_filter_is_described_and_the_segment_date_given(ws):
    out = ws.analytics("buyers", "trend", segment=SEGMENT[0], bucket="high", where=WHERE)
    f = out["filter"]
    assert f["bucket"] == "High" and f["segment"] == SEGMENT[0] and f["where"] == WHERE
    assert f["segment_date"] == DATES[-1]
    assert "members of segment 'top fifth' (as of 2025-07-19)" in f["in_words"]
    assert ws.analytics("buyers", "trend")["filter"]["in_words"] == "every scored profile"


def test_runs_by_id_or_date(ws, truth):
    run_id = truth.runs[DATES[1]]
    out = ws.analytics("buyers", "trend", runs=[run_id, DATES[3]])
    assert [d["score_date"] for d in out["dates"]] == [DATES[1], DATES[3]]
    with pytest.raises(NotFoundError, match="Score dates: 2025-05-15"):
        ws.analytics("buyers", "trend", runs="2024-01-01")


@pytest.mark.parametrize(("options", "error", "match"), [
    ({"bucket": "Hot"}, ConfigError, "Unknown bucket 'Hot'"),
    ({"where": "loyalty_teir = 'gold'"}, ConditionError, "Did you mean 'loyalty_tier'"),
    ({"where": "loyalty_tier = 'gold'; DROP TABLE runs"}, ConditionError, "';'"),
    ({"where": "loyalty_tier = 'gold' OR read_csv('x') IS NULL"}, ConditionError, "not allowed"),
    ({"where": "signup_date > 5"}, ConditionError, "Types do not match"),
    ({"segment": "nobody"}, NotFoundError, "No segment named 'nobody'"),
])
def test_bad_filters_are_refused(ws, options, error, match):
    with pytest.raises(error, match=match):
        ws.analytics("buyers", "trend", **options)


def test_refusals(ws):
    with pytest.raises(ConfigError, match=r"Unknown analytic 'trends'\. Did you mean 'trend'"):
        ws.analytics("buyers", "trends")
    with pytest.raises(ConfigError, match="'trend' takes no options; not bins"):
        ws.analytics("buyers", "trend", bins=3)
    with pytest.raises(ConfigError, match="flow needs two runs"):
        ws.analytics("buyers", "flow", runs=DATES[0])
    with pytest.raises(ConfigError, match="one run"):
        ws.analytics("buyers", "reasons", runs="all")
    with pytest.raises(ConfigError, match="Unknown profile attribute 'tier'"):
        ws.analytics("buyers", "cohorts", attribute="tier")
    with pytest.raises(ConfigError, match="need a profile attribute"):
        ws.analytics("buyers", "cohorts")
    with pytest.raises(ConfigError, match="reads no profiles dataset"):
        ws.analytics("no-profiles", "cohorts", attribute="loyalty_tier")
    with pytest.raises(NotFoundError, match="no successful run"):
        ws.analytics("no-profiles", "trend")
    with pytest.raises(ConfigError, match="2 to 100 bins"):
        ws.analytics("buyers", "distribution", bins=1)


def test_only_small_aggregates_leave_the_engine(ws, monkeypatch):
    """Every result an analytic reads out of the engine is an aggregate: at most a few hundred
    rows here, where the history has 6,000+ rows and every run 1,400+."""
    import ibis.expr.types.relations as relations

    seen = []

    def guard(name):
        original = getattr(relations.Table, name)

        def read(self, *args, **kwargs):
            result = original(self, *args, **kwargs)
            seen.append(len(result))
            assert len(result) <= 200, f"{name} read {len(result)} rows out of the engine"
            return result
        return read

    for name in ("to_pyarrow", "to_pandas", "execute"):
        monkeypatch.setattr(relations.Table, name, guard(name))
    for kind, options in [("trend", {}), ("flow", {"runs": "all"}), ("overlap", {}),
                          ("distribution", {}), ("reasons", {}),
                          ("cohorts", {"attribute": "signup_date"}), ("outcomes", {})]:
        ws.analytics("buyers", kind, where=WHERE, segment=SEGMENT[0], **options)
    assert seen


# -- the CLI ---------------------------------------------------------------------------------------


def test_cli_prints_tables_and_json(ws, capsys):
    from likely.cli.main import main

    base = ["--workspace", str(ws.path)]
    assert main(["analytics", "trend", "buyers", *base]) == 0
    text = capsys.readouterr().out
    assert "buckets per score date" in text and DATES[-1] in text
    assert main(["analytics", "flow", "buyers", "--runs", "all", "--bucket", "High", *base]) == 0
    assert "Not scored" in capsys.readouterr().out
    assert main(["analytics", "cohorts", "buyers", "-a", "loyalty_tier", "--where", WHERE,
                 "--json", *base]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(ws.analytics(
        "buyers", "cohorts", attribute="loyalty_tier", where=WHERE, top=12)))
    for kind in ("overlap", "distribution", "reasons", "outcomes"):
        assert main(["analytics", kind, "buyers", *base]) == 0, kind
        assert "buyers" in capsys.readouterr().out
    assert main(["analytics", "trend", "buyers", "--bucket", "Hot", *base]) == 2
    assert "Unknown bucket 'Hot'" in capsys.readouterr().err


def test_attributes_of_a_history_are_the_version_current_at_each_score_date(ws):
    """A profiles history (several versions per profile, each from its updated_at): each row
    reads the version stamped last before the midnight after its score date; a snapshot's date
    later than the score date reads null."""
    from datetime import datetime

    import ibis

    from likely.analytics.scope import Scope
    from likely.data.profiles import Profiles

    versions = ibis.memtable({
        "profile_id": ["a", "a", "b", "c"],
        "updated_at": [datetime(2025, 1, 1), datetime(2025, 6, 16), datetime(2025, 7, 20),
                       None],
        "tier": ["bronze", "gold", "silver", "platinum"],
        "signup": [date(2024, 1, 1), date(2024, 1, 1), date(2025, 7, 2), date(2025, 6, 1)],
    })
    rows = ibis.memtable({"profile_id": ["a", "a", "b", "b", "c", "d"],
                          "score_date": [date(2025, 6, 15), date(2025, 6, 16), date(2025, 7, 1),
                                         date(2025, 7, 19), date(2025, 5, 15), date(2025, 7, 1)]})
    runs = [records.RunRecord(id=f"r{i}", instance_id="x", as_of=d, status="success",
                              started_at="", finished_at=None, model_id=None)
            for i, d in enumerate(["2025-05-15", "2025-06-15", "2025-06-16", "2025-07-01",
                                   "2025-07-19"])]
    scope = Scope(ws.catalog, ws.con, ws.path, ws.instance("buyers"))
    for shape, expected in [
        ("history", {("a", "2025-06-15"): ("bronze", "2024-01-01"),
                     ("a", "2025-06-16"): ("gold", "2024-01-01"),
                     ("b", "2025-07-01"): (None, None), ("b", "2025-07-19"): (None, None),
                     ("c", "2025-05-15"): ("platinum", None), ("d", "2025-07-01"): (None, None)}),
        ("snapshot", {("a", "2025-06-15"): ("gold", "2024-01-01"),
                      ("a", "2025-06-16"): ("gold", "2024-01-01"),
                      ("b", "2025-07-01"): ("silver", None),
                      ("b", "2025-07-19"): ("silver", "2025-07-02"),
                      ("c", "2025-05-15"): ("platinum", None), ("d", "2025-07-01"): (None, None)}),
    ]:
        table = versions if shape == "history" else versions.filter(
            ~((versions.profile_id == "a") & (versions.tier == "bronze")))
        scope.__dict__["profiles"] = Profiles(table, shape)
        scope.__dict__["attribute_types"] = {"tier": table.schema()["tier"],
                                             "signup": table.schema()["signup"]}
        got = scope.with_attributes(rows, ["tier", "signup"], runs, prefix="_").to_pyarrow()
        seen = {(r["profile_id"], r["score_date"].isoformat()):
                (r["_tier"], r["_signup"].isoformat() if r["_signup"] else None)
                for r in got.to_pylist()}
        assert seen == expected, shape
