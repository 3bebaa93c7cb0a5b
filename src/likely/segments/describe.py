"""What a segment is and who is in it, for the CLI, the API and the dashboard alike."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from likely.catalog import Catalog
from likely.data.schema import PROFILE_ID
from likely.engine import read_parquet
from likely.segments.members import basis, members
from likely.segments.publish import changes, history, membership_at
from likely.segments.rules import Rule, check_rule
from likely.segments.store import Segment, segment_rule

if TYPE_CHECKING:
    import ibis.expr.types as ir
    from ibis.backends import BaseBackend

SAMPLE_ROWS = 20


def preview(catalog: Catalog, con: BaseBackend, root: Path, rule: str, *,
            sample: int = SAMPLE_ROWS) -> dict[str, Any]:
    """A rule's size and first members at the instances' current scores, before saving it."""
    checked = check_rule(catalog, root, rule)
    at = basis(catalog, checked)
    table = members(catalog, con, root, checked, at)
    return {"rule": rule, "in_words": rule_in_words(checked), "profiles": _count(table),
            "score_date": at.score_date.isoformat(), "runs": at.run_ids(),
            "sample": _rows(table, sample)}


def size(catalog: Catalog, con: BaseBackend, root: Path, segment: Segment) -> dict[str, Any]:
    """How many profiles the segment selects at the instances' current runs: the published
    membership's count when it is of those runs (no query), else counted in the engine."""
    rule = segment_rule(catalog, root, segment)
    at = basis(catalog, rule)
    kept = membership_at(catalog, segment, None) if segment.published else None
    if kept is not None and kept["run_ids"] == at.run_ids():
        profiles = kept["profiles"]
    else:
        profiles = _count(members(catalog, con, root, rule, at))
    return {"profiles": profiles, "score_date": at.score_date.isoformat(),
            "runs": at.run_ids()}


def segment_members(catalog: Catalog, con: BaseBackend, root: Path, segment: Segment,
                    as_of: date | None = None) -> ir.Table:
    """Members at the newest score date on or before ``as_of``: the published membership kept
    for it when there is one, else the rule evaluated over the runs of that date."""
    if segment.published:
        kept = membership_at(catalog, segment, as_of)
        if kept is not None:
            return read_parquet(con, [root / kept["path"]])
    rule = segment_rule(catalog, root, segment)
    return members(catalog, con, root, rule, basis(catalog, rule, as_of))


def members_date(catalog: Catalog, root: Path, segment: Segment,
                 as_of: date | None = None) -> str:
    """The score date :func:`segment_members` reads for ``as_of``."""
    if segment.published:
        kept = membership_at(catalog, segment, as_of)
        if kept is not None:
            return kept["score_date"]
    return basis(catalog, segment_rule(catalog, root, segment), as_of).score_date.isoformat()


def show(catalog: Catalog, con: BaseBackend, root: Path, segment: Segment, *,
         sample: int = SAMPLE_ROWS) -> dict[str, Any]:
    """The segment with its rule in words, size, size per run, who entered and left last."""
    rule = segment_rule(catalog, root, segment)
    runs = history(catalog, con, root, segment)
    current = runs[-1] if runs else None
    moved = changes(catalog, con, root, segment) if segment.published else None
    out = {**segment.to_dict(), "in_words": rule_in_words(rule),
           "instances": [i.name for i in rule.instances],
           "profiles": current["profiles"] if current else None,
           "score_date": current["score_date"] if current else None,
           "history": runs,
           "entered": current.get("entered") if current else None,
           "left": current.get("left") if current else None,
           "sample": [], "entered_sample": [], "left_sample": []}
    if current:
        out["sample"] = _rows(segment_members(catalog, con, root, segment), sample)
    if moved:
        out["entered_sample"] = _rows(moved[0], sample)
        out["left_sample"] = _rows(moved[1], sample)
    return out


def rule_in_words(rule: Rule) -> str:
    """``"purchase-30d".bucket = 'High' AND score < 40`` → purchase-30d bucket is High and …"""
    try:
        return _words(rule.condition.tree)
    except KeyError:  # a form words do not cover: the rule as written
        return rule.text


_PHRASES = {exp.EQ: "is", exp.NEQ: "is not", exp.GT: "above", exp.GTE: "at least",
            exp.LT: "below", exp.LTE: "at most"}


def _words(node: exp.Expression) -> str:
    if isinstance(node, exp.Paren):
        return f"({_words(node.this)})"
    if isinstance(node, exp.And):
        return f"{_words(node.this)} and {_words(node.expression)}"
    if isinstance(node, exp.Or):
        return f"{_words(node.this)} or {_words(node.expression)}"
    if isinstance(node, exp.Not):
        return f"not {_words(node.this)}"
    if isinstance(node, exp.Column):
        parts = [p.name for p in node.parts]
        return " ".join([parts[0], *[p.replace("_", " ") for p in parts[1:]]]) \
            if len(parts) > 1 else parts[0]
    if isinstance(node, exp.Literal):
        return node.this
    for cls, phrase in _PHRASES.items():
        if isinstance(node, cls):
            return f"{_words(node.this)} {phrase} {_words(node.expression)}"
    if isinstance(node, exp.In):
        if isinstance(node.args.get("field"), exp.Column) or (
                len(node.expressions) == 1 and isinstance(node.expressions[0], exp.Column)):
            column = node.args.get("field") or node.expressions[0]
            return f"{_words(column)} include {_words(node.this)}"
        listed = ", ".join(_words(e) for e in node.expressions)
        return f"{_words(node.this)} {'is not' if node.args.get('not') else 'is'} one of {listed}"
    if isinstance(node, exp.Between):
        return f"{_words(node.this)} between {_words(node.args['low'])} and " \
               f"{_words(node.args['high'])}"
    if isinstance(node, exp.Is):
        return f"{_words(node.this)} is missing"
    raise KeyError(node.key)


def _count(table: ir.Table) -> int:
    return int(table.count().execute())


def _rows(table: ir.Table, limit: int) -> list[dict[str, Any]]:
    return table.order_by(PROFILE_ID).limit(limit).to_pyarrow().to_pylist()
