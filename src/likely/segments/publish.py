"""Publishing: a segment's membership kept after every run, so it has a history.

Each publish writes the members at the basis's score date to its own Parquet file
(``segments/<segment_id>/<score_date>-<token>.parquet``, atomically), then points the catalog's
``segment_memberships`` row for that date at it; the file it replaces is removed only after.
A failed run publishes nothing, so the previous membership stays current. Who entered and who
left is counted against the newest earlier membership.
"""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq

from likely.catalog import Catalog, utcnow
from likely.data.schema import PROFILE_ID
from likely.engine import read_parquet
from likely.errors import LikelyError
from likely.scoring.instances import Instance
from likely.segments.members import basis, members, score_dates
from likely.segments.rules import bucket_rule, reason_rule
from likely.segments.store import (
    Segment,
    create_segment,
    delete_segment,
    get_segment,
    list_segments,
    membership_dir,
    segment_rule,
)
from likely.storage import write_expr

if TYPE_CHECKING:
    import ibis.expr.types as ir
    from ibis.backends import BaseBackend

#: How many of the most common strongest reasons among High get an automatic segment.
AUTO_REASONS = 3
AUTO_REASON_SHARE = 0.05  # a reason shared by fewer of the High profiles is not an audience
LIVE_HISTORY = 6  # score dates computed on request for a segment that is not published


def publish(catalog: Catalog, con: BaseBackend, root: Path, segment: Segment,
            as_of: date | None = None) -> dict[str, Any]:
    """Materialise the membership at the instances' current runs (or as of a date)."""
    rule = segment_rule(catalog, root, segment)
    at = basis(catalog, rule, as_of)
    folder = membership_dir(root, segment.id)
    path = folder / f"{at.score_date.isoformat()}-{uuid.uuid4().hex[:8]}.parquet"
    write_expr(members(catalog, con, root, rule, at), path)
    previous = _membership_before(catalog, segment.id, at.score_date)
    entered, left = _changes(con, root, path, previous)
    row = {"segment_id": segment.id, "score_date": at.score_date.isoformat(),
           "path": str(path.relative_to(root)), "profiles": pq.ParquetFile(path).metadata.num_rows,
           "entered": entered, "exited": left, "run_ids": at.run_ids(), "published_at": utcnow()}
    replaced = catalog.query_one(
        "SELECT path FROM segment_memberships WHERE segment_id = ? AND score_date = ?",
        (segment.id, row["score_date"]))
    with catalog.transaction():
        catalog.execute("DELETE FROM segment_memberships WHERE segment_id = ? AND score_date = ?",
                        (segment.id, row["score_date"]))
        catalog.insert("segment_memberships", row)
    if replaced and replaced["path"] != row["path"]:
        (root / replaced["path"]).unlink(missing_ok=True)
    return _membership(row)


def publish_history(catalog: Catalog, con: BaseBackend, root: Path, segment: Segment,
                    limit: int = LIVE_HISTORY) -> list[dict[str, Any]]:
    """Publish a new segment at the last ``limit`` score dates of its instances, oldest first,
    so it starts with a size per run and who entered and left."""
    rule = segment_rule(catalog, root, segment)
    return [publish(catalog, con, root, segment, day)
            for day in score_dates(catalog, rule)[-limit:]]


def memberships(catalog: Catalog, segment: Segment) -> list[dict[str, Any]]:
    """The published memberships, oldest first."""
    rows = catalog.query("SELECT * FROM segment_memberships WHERE segment_id = ? "
                         "ORDER BY score_date", (segment.id,))
    return [_membership(r) for r in rows]


def membership_at(catalog: Catalog, segment: Segment, as_of: date | None) -> dict | None:
    """The newest published membership on or before ``as_of`` (default: the newest)."""
    found = [m for m in memberships(catalog, segment)
             if as_of is None or date.fromisoformat(m["score_date"]) <= as_of]
    return found[-1] if found else None


def history(catalog: Catalog, con: BaseBackend, root: Path, segment: Segment) -> list[dict]:
    """Size, entered and left per score date: published ones as kept; otherwise computed for
    the last few score dates of the rule's instances."""
    if segment.published:
        kept = memberships(catalog, segment)
        if kept:
            return kept
    rule = segment_rule(catalog, root, segment)
    out: list[dict[str, Any]] = []
    before: ir.Table | None = None
    for day in score_dates(catalog, rule)[-LIVE_HISTORY:]:
        at = basis(catalog, rule, day)
        now = members(catalog, con, root, rule, at).select(PROFILE_ID).cache()
        entered = left = None
        if before is not None:
            entered, left = _count_changes(now, before)
        out.append({"score_date": day.isoformat(), "profiles": int(now.count().execute()),
                    "entered": entered, "left": left, "run_ids": at.run_ids(),
                    "published_at": None})
        before = now
    return out


def changes(catalog: Catalog, con: BaseBackend, root: Path,
            segment: Segment) -> tuple[ir.Table, ir.Table] | None:
    """Who entered and who left at the newest published membership (None before two exist)."""
    kept = memberships(catalog, segment)
    if len(kept) < 2:
        return None
    now = read_parquet(con, [root / kept[-1]["path"]])
    before = read_parquet(con, [root / kept[-2]["path"]])
    return (now.anti_join(before, PROFILE_ID).order_by(PROFILE_ID),
            before.anti_join(now, PROFILE_ID).order_by(PROFILE_ID))


# -- after a run ---------------------------------------------------------------------------------


def after_run(catalog: Catalog, con: BaseBackend, root: Path, instance: Instance,
              as_of: date | None = None) -> dict[str, Any]:
    """Refresh the instance's automatic segments and publish every published segment that reads
    it, at the run's score date (a backfilled date gets its membership too). A segment that
    cannot be published is reported, and keeps its previous membership."""
    done, problems = [], []
    try:
        refresh_automatic(catalog, con, root, instance)
    except LikelyError as exc:  # the run stands; its automatic segments wait for the next one
        problems.append({"segment": f"{instance.name} (automatic)", "problem": exc.message})
    for segment in list_segments(catalog, hidden=True, instance_id=instance.id):
        if not segment.published:
            continue
        try:
            done.append({"segment": segment.name,
                         **publish(catalog, con, root, segment, as_of)})
        except LikelyError as exc:
            problems.append({"segment": segment.name, "problem": exc.message})
    return {"published": done, "problems": problems}


def refresh_automatic(catalog: Catalog, con: BaseBackend, root: Path,
                      instance: Instance) -> list[Segment]:
    """One segment per bucket and one per common strongest reason among High, named after the
    instance; reason segments no longer among the most common are removed. Hidden stays hidden."""
    wanted = {f"{instance.name} — {b}": bucket_rule(instance, b) for b in ("High", "Medium", "Low")}
    for behaviour in _common_reasons(catalog, con, root, instance):
        wanted[f"{instance.name} — High — {behaviour}"] = reason_rule(instance, "High", behaviour)
    mine = {s.name: s for s in list_segments(catalog, hidden=True, instance_id=instance.id)
            if s.automatic}
    for name, segment in mine.items():
        if wanted.get(name) != segment.rule:  # no longer common, or the instance renamed
            delete_segment(catalog, root, segment.id)
    for name, rule in wanted.items():
        if not catalog.query_one("SELECT id FROM segments WHERE name = ?", (name,)):
            create_segment(catalog, root, name, rule, automatic=True, published=True,
                           description=_auto_description(name))
    return [get_segment(catalog, n) for n in wanted
            if catalog.query_one("SELECT id FROM segments WHERE name = ? AND automatic = 1",
                                 (n,))]


def _common_reasons(catalog: Catalog, con: BaseBackend, root: Path,
                    instance: Instance) -> list[str]:
    """The most common strongest reasons among the instance's current High profiles."""
    from likely.scoring.results import latest_scored

    scores = latest_scored(catalog, con, root, instance)
    high = scores.filter(scores.bucket == "High")
    top = high.mutate(reason=high.influential_factors[0].behaviour).filter(
        lambda t: t.reason.notnull())
    counts = (top.group_by("reason").aggregate(profiles=top.count())
              .order_by([lambda t: t.profiles.desc(), "reason"]).limit(AUTO_REASONS)).execute()
    floor = AUTO_REASON_SHARE * int(high.count().execute())
    return [str(r) for r, n in zip(counts["reason"], counts["profiles"], strict=True)
            if n >= floor]


def _auto_description(name: str) -> str:
    return f"Made by likely after each run ({name}); refreshed every run."


def _membership_before(catalog: Catalog, segment_id: str, day: date) -> Path | None:
    row = catalog.query_one(
        "SELECT path FROM segment_memberships WHERE segment_id = ? AND score_date < ? "
        "ORDER BY score_date DESC LIMIT 1", (segment_id, day.isoformat()))
    return Path(row["path"]) if row else None


def _changes(con: BaseBackend, root: Path, path: Path,
             previous: Path | None) -> tuple[int | None, int | None]:
    if previous is None:
        return None, None
    return _count_changes(read_parquet(con, [path]).select(PROFILE_ID),
                          read_parquet(con, [root / previous]).select(PROFILE_ID))


def _count_changes(now: ir.Table, before: ir.Table) -> tuple[int, int]:
    entered = now.anti_join(before, PROFILE_ID).count()
    left = before.anti_join(now, PROFILE_ID).count()
    return int(entered.execute()), int(left.execute())


def _membership(row: dict[str, Any]) -> dict[str, Any]:
    """A membership as the API shows it: ``left`` (the catalog column is ``exited``)."""
    out = {k: v for k, v in row.items() if k not in ("id", "exited")}
    out["left"] = row.get("exited")
    return out

