"""`likely run`, `likely runs ...`, `likely scores`, `likely explain`, `likely factors`,
`likely export`."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from likely.cli.common import (
    JsonOption,
    WorkspaceOption,
    console,
    fmt_buckets,
    fmt_count,
    fmt_value,
    open_workspace,
    print_json,
    progress_bar,
)
from likely.errors import ConfigError
from likely.features.plan import behaviour_words

OPTIMISTIC = "optimistic: the holdout is a random share of the only window"
runs_app = typer.Typer(help="Runs of an instance.", no_args_is_help=True)

_MODEL_WORDS = {"trees": "trees", "btyd": "BG/NBD x Gamma-Gamma"}
_OTHER_MODEL = {"trees": "btyd", "btyd": "trees"}
#: A clv holdout's five metrics as ``runs show`` lists them, with their format.
VALUE_METRICS = {"gini": ("normalised Gini", "{:.4f}"), "spearman": ("Spearman", "{:.4f}"),
                 "decile_mape": ("decile MAPE", "{:.4f}"),
                 "top_decile_capture": ("top-decile capture", "{:.1%}"),
                 "predicted_total": ("predicted total", "{:,.2f}"),
                 "actual_total": ("actual total", "{:,.2f}")}


def run(
    name: Annotated[str | None, typer.Argument(help="The instance (or --due for all due).")]
    = None,
    as_of: Annotated[str | None, typer.Option(
        help="Score as of the END of this day, YYYY-MM-DD: its events are features. Default: "
             "the newest complete day of the data.")] = None,
    retrain: Annotated[bool, typer.Option(
        "--retrain", help="Train a new model even if the current one is not due for "
                          "retraining.")] = False,
    due: Annotated[bool, typer.Option(
        "--due", help="Run every scheduled instance whose run is due (for cron or systemd "
                      "timers); missed runs are caught up once.")] = False,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Score and explain an instance, training a new model when retraining is due.

    Example: likely run buyers --as-of 2025-06-30
             likely run --due            (every few minutes from cron)
    """
    ws = open_workspace(workspace)
    if due:
        return _run_due(ws, json)
    if name is None:
        raise ConfigError("Name an instance to run, or pass --due.")
    with progress_bar(not json) as progress:
        record = ws.run(name, as_of=_date(as_of), progress=progress, retrain=retrain)
    if json:
        return print_json(record.to_dict())
    _print_summary(ws, name, record)


def backfill(
    name: str,
    start: Annotated[str, typer.Option("--from", help="First score date, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option("--to", help="Last score date, YYYY-MM-DD.")],
    every: Annotated[str, typer.Option(help="Days between score dates: 7d, 2w, 30.")] = "7d",
    retrain: Annotated[bool, typer.Option(
        "--retrain", help="Train a new model at the first date.")] = False,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Score as of past dates, each with only the data before it: a history at once.

    Example: likely backfill buyers --from 2025-05-01 --to 2025-07-15 --every 7d
    """
    from likely.scoring.backfill import parse_every

    ws = open_workspace(workspace)
    with progress_bar(not json) as progress:
        records = ws.backfill(name, _date(start), _date(end), every_days=parse_every(every),
                              progress=progress, retrain=retrain)
    if json:
        return print_json([r.to_dict() for r in records])
    table = Table("score date", "run", "model", "scored", "buckets", "drift")
    for record in records:
        retraining = record.metrics.get("retraining", {})
        drift = record.metrics.get("drift", {})
        table.add_row(record.as_of, record.id,
                      "trained" if retraining.get("retrained") else "re-scored",
                      fmt_count(record.counts.get("scored_profiles", 0)),
                      fmt_buckets(record.counts.get("buckets", {})),
                      ("[red]drift[/] " if drift.get("drifted") else "")
                      + (f"PSI {drift['score_psi']:.3f}" if drift else "-"))
    console.print(table)


def _run_due(ws, json: bool) -> None:
    done = ws.run_due()
    if json:
        return print_json(done)
    if not done:
        console.print("Nothing is due.")
    for entry in done:
        if "run" in entry:
            run = entry["run"]
            console.print(f"{entry['instance']}: [green]{run['status']}[/] run {run['id']} as "
                          f"of {run['as_of']} (due {entry['due'][:16]} UTC)", highlight=False)
        else:
            console.print(f"{entry['instance']}: [yellow]{entry.get('skipped') or ''}[/]"
                          f"[red]{entry.get('error') or ''}[/]", highlight=False)
    if any("error" in e for e in done):
        raise typer.Exit(1)


def _print_summary(ws, name: str, record) -> None:
    holdout = record.metrics.get("holdout", {})
    value = _is_value(ws, name)
    console.print(f"Run [bold]{record.id}[/] of '{name}' as of {record.as_of}: "
                  f"[green]{record.status}[/] in {sum(record.timings.values()):.1f}s")
    quality = _value_quality(record.metrics) if value else (
        f"AUC {holdout.get('auc', 0):.3f}, PR-AUC {holdout.get('pr_auc', 0):.3f}, "
        f"ECE {holdout.get('ece', 0):.3f}")
    console.print(f"  holdout{':' if value else ''} {quality}{_optimistic(holdout)}; "
                  f"scored {fmt_count(record.counts.get('scored_profiles', 0))} profiles")
    if record.metrics.get("expected"):
        console.print(f"  {_expected(record.metrics['expected'])}", highlight=False)
    console.print(f"  buckets: {fmt_buckets(record.counts.get('buckets', {}))}")
    top = _behaviours(ws.factors(name))[:5]
    width = max((len(b["name"]) for b in top), default=0)
    console.print(f"  top behaviours (weight = mean |contribution| in "
                  f"{'log-value' if value else 'log-odds'}, share):")
    for b in top:
        console.print(f"    {b['name']:<{width}}  {b['mean_abs_shap']:.3f}  {b['share_pct']:4.1f}%",
                      markup=False, highlight=False)
    console.print(f"  more: likely factors {name}")
    for note in record.notes:
        console.print(f"  [yellow]note:[/] {escape(note)}")
    console.print(f"  outputs: {ws.path / 'runs' / record.instance_id / record.id}")
    _print_published(ws.last_publish)


def _is_value(ws, name: str) -> bool:
    """Whether ``name`` is a lifetime-value instance: its metrics and scores are of spend."""
    return ws.instance(name).config.type == "clv"


def _value_quality(metrics: dict) -> str:
    """A clv run's holdout in one line: the chosen model's Gini against the other's, and the
    rest of its five metrics."""
    holdout = metrics.get("holdout") or {}
    if "gini" not in holdout:
        return "not measured"
    chosen = holdout.get("model", "?")
    other = (metrics.get("value_models") or {}).get(_OTHER_MODEL.get(chosen, ""), {})
    against = (f" (against {other['gini']:.3f} for {_MODEL_WORDS[_OTHER_MODEL[chosen]]})"
               if "gini" in other else "")
    return (f"{_MODEL_WORDS.get(chosen, chosen)} chosen: normalised Gini {holdout['gini']:.3f}"
            f"{against}, Spearman {holdout['spearman']:.3f}, decile MAPE "
            f"{holdout['decile_mape']:.3f}, top-decile capture "
            f"{holdout['top_decile_capture']:.1%}, predicted {holdout['predicted_total']:,.0f} "
            f"against actual {holdout['actual_total']:,.0f}")


def _print_published(report: dict | None) -> None:
    """What the run published: segments refreshed, with who entered and left."""
    if not report:
        return
    done = report["published"]
    moved = [f"{p['segment']} {fmt_count(p['profiles'])}"
             + (f" (+{fmt_count(p['entered'])} −{fmt_count(p['left'])})"
                if p["entered"] is not None else "") for p in done[:6]]
    more = f" and {len(done) - 6} more" if len(done) > 6 else ""
    console.print(f"  segments published: {', '.join(moved) or 'none'}{more}", highlight=False)
    for problem in report["problems"]:
        console.print(f"  [yellow]segment '{escape(problem['segment'])}' kept its previous "
                      f"membership:[/] {escape(problem['problem'])}")


@runs_app.command("list")
def list_(name: str, workspace: WorkspaceOption = None, json: JsonOption = False) -> None:
    """List an instance's runs, newest first.

    Example: likely runs list buyers
    """
    ws = open_workspace(workspace)
    runs = ws.runs(name)
    if json:
        return print_json([r.to_dict() for r in runs])
    quality = "gini" if _is_value(ws, name) else "auc"
    table = Table("run", "as of", "status", "Gini" if quality == "gini" else "AUC", "scored",
                  "seconds", "model", "drift", "error")
    for r in runs:
        measured = r.metrics.get("holdout", {}).get(quality)
        optimistic = "*" if _optimistic(r.metrics.get("holdout", {})) else ""
        if optimistic:
            table.caption = f"* {OPTIMISTIC}"
        retraining, drift = r.metrics.get("retraining"), r.metrics.get("drift")
        table.add_row(r.id, r.as_of, r.status,
                      f"{measured:.3f}{optimistic}" if measured is not None else "-",
                      fmt_count(r.counts.get("scored_profiles", "-")),
                      f"{sum(r.timings.values()):.1f}",
                      ("trained" if retraining["retrained"] else "re-scored") if retraining
                      else "-",
                      (("[red]drift[/] " if drift["drifted"] else "")
                       + f"{drift['score_psi']:.3f}") if drift else "-",
                      r.error or "")
    console.print(table if runs else f"No runs yet: likely run {name}")


@runs_app.command("show")
def show(name: str, run_id: Annotated[str | None, typer.Argument()] = None,
         workspace: WorkspaceOption = None, json: JsonOption = False) -> None:
    """Show one run (default: the newest): status, timings, counts, metrics, errors.

    Example: likely runs show buyers
    """
    record = open_workspace(workspace).get_run(name, run_id)
    if json:
        return print_json(record.to_dict())
    table = Table(show_header=False, title=f"run {record.id}")
    for key in ("as_of", "status", "started_at", "finished_at", "model_id"):
        table.add_row(key, str(getattr(record, key) or ""))
    if record.error:
        table.add_row("error", record.error)  # coded errors start with their "[code]"
    anchors = record.metrics.get("windows", {}).get("anchors", [])
    if len(anchors) > 1:  # the newest window is the holdout, the older ones train
        table.add_row("holdout window", anchors[0][:10])
        table.add_row("training windows", ", ".join(a[:10] for a in anchors[1:]))
    elif anchors:
        table.add_row("training window", f"{anchors[0][:10]} (a random share of its profiles "
                                         "is the holdout)")
    for stage, seconds in record.timings.items():
        table.add_row(f"time: {stage}", f"{seconds:.2f}s")
    for key, value in record.counts.items():
        table.add_row(f"count: {key}", fmt_buckets(value) if isinstance(value, dict)
                      else fmt_count(value))
    holdout = record.metrics.get("holdout", {})
    for key in ("auc", "pr_auc", "brier", "log_loss", "ece"):
        if key in holdout:
            table.add_row(f"holdout {key}", f"{holdout[key]:.4f}{_optimistic(holdout)}")
    for label, value in _value_rows(record.metrics):
        table.add_row(label, value)
    if holdout.get("calibration_measured_on"):
        table.add_row("calibration measured on", holdout["calibration_measured_on"] +
                      " holdout probabilities")
    if record.metrics.get("expected"):
        table.add_row("expected", _expected(record.metrics["expected"]))
    if holdout.get("lift"):
        table.add_row("holdout top-10% lift", f"{holdout['lift'][0]['lift']:.2f}x")
    model = record.metrics.get("model", {})
    if model.get("num_leaves"):
        fitted = (f"objective {model['objective']}" if model.get("objective") == "tweedie"
                  else f"calibration {(model.get('calibration') or {}).get('chosen', '?')}")
        table.add_row("model", f"{model['num_leaves']} leaves x {model['best_iteration']} trees, "
                               f"{model['features']} features, {fitted}")
    for note in record.notes:
        table.add_row("note", escape(note))
    console.print(table)


def _optimistic(holdout: dict) -> str:
    """The warning every screen shows next to metrics from a holdout that is not out of time."""
    return "" if holdout.get("out_of_time", True) else f" ({OPTIMISTIC})"


def _value_rows(metrics: dict) -> list[tuple[str, str]]:
    """A clv run's holdout as ``runs show`` rows: the chosen model, each of the five metrics
    for it, and the other model's next to it."""
    holdout = metrics.get("holdout") or {}
    if "gini" not in holdout:
        return []
    chosen = holdout.get("model", "?")
    other = _OTHER_MODEL.get(chosen, "")
    compared = (metrics.get("value_models") or {}).get(other) or {}
    rows = [("holdout model", f"{_MODEL_WORDS.get(chosen, chosen)} chosen over "
                              f"{_MODEL_WORDS.get(other, other)} by normalised Gini"
                              f"{_optimistic(holdout)}"),
            ("holdout buyers", f"{fmt_count(holdout.get('buyers'))} of "
                               f"{fmt_count(holdout.get('rows'))} profiles")]
    for key, (label, form) in VALUE_METRICS.items():
        if key in holdout:
            against = (f" ({_MODEL_WORDS.get(other, other)}: {form.format(compared[key])})"
                       if key in compared and key != "actual_total" else "")
            rows.append((f"holdout {label}", form.format(holdout[key]) + against))
    return rows


def _expected(expected: dict) -> str:
    if "predicted_value_total" in expected:  # a clv run: what the scored profiles are worth
        n = expected.get("scored_profiles") or 0
        mean = expected["predicted_value_total"] / n if n else 0.0
        return (f"predicted value {expected['predicted_value_total']:,.0f} over "
                f"{fmt_count(n)} scored profiles (mean {mean:,.2f}); expected purchases "
                f"{expected.get('expected_purchases_total', 0):,.0f}")
    last = expected.get("last_window") or {}
    return (f"expected to meet the goal: {expected['expected_goal_profiles']:,.0f} of "
            f"{fmt_count(expected['scored_profiles'])} scored ({expected['expected_rate']:.1%}); "
            f"the last window: {fmt_count(last.get('goal_profiles'))} of "
            f"{fmt_count(last.get('rows'))} ({(last.get('rate') or 0):.1%})")


def scores(
    name: str,
    profile: Annotated[str | None, typer.Option(help="One profile id.")] = None,
    top: Annotated[int, typer.Option(help="Show the N most likely (clv: most valuable).")] = 20,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Current scores, most likely first (a clv instance: most valuable first).

    Example: likely scores buyers --top 10
    """
    ws = open_workspace(workspace)
    rows = ws.scores(name, profile_id=profile, top=top).to_pylist()
    if json:
        return print_json(rows)
    if _is_value(ws, name):
        table = Table("profile", "predicted value", "value bucket", "expected purchases",
                      "probability active", "score", "top reason")
        for r in rows:
            table.add_row(r["profile_id"], f"{r['predicted_value']:,.2f}", r["value_bucket"],
                          f"{r['expected_purchases']:.2f}", _share(r["probability_active"]),
                          f"{r['score']:.1f}", _reason(r))
    else:
        table = Table("profile", "score", "percentile", "bucket", "probability", "top reason")
        for r in rows:
            table.add_row(r["profile_id"], f"{r['score']:.1f}", str(r["percentile"]),
                          r["bucket"], f"{r['probability']:.3f}", _reason(r))
    console.print(table)


def _reason(row: dict) -> str:
    factor = (row["influential_factors"] or [None])[0]
    return (f"{factor.get('behaviour') or factor['name']} ({factor['direction']}): "
            f"{factor['name']} = {fmt_value(factor['value'])}" if factor else "-")


def _share(probability: float | None) -> str:
    """A probability active as a share; a profile that never bought has none."""
    return "never bought" if probability is None else f"{probability:.1%}"


def _active_words(probability: float | None) -> str:
    return ("never bought, so no probability active" if probability is None
            else f"probability active {probability:.1%}")


def explain(name: str, profile_id: str, workspace: WorkspaceOption = None,
            json: JsonOption = False) -> None:
    """Why a profile has its score: reason codes and score history.

    Example: likely explain buyers p000123
    """
    ws = open_workspace(workspace)
    result = ws.explain(name, profile_id)
    if json:
        return print_json(result)
    p = result["profile"]
    if _is_value(ws, name):
        horizon = ws.instance(name).config.horizon_days
        console.print(f"Profile [bold]{profile_id}[/]: predicted value "
                      f"{p['predicted_value']:,.2f} over the next {horizon} days "
                      f"({p['value_bucket']}, {p['bucket']}), value percentile "
                      f"{p['value_percentile']}, expected purchases "
                      f"{p['expected_purchases']:.2f}, "
                      f"{_active_words(p['probability_active'])} as of {p['score_date']}")
    else:
        console.print(f"Profile [bold]{profile_id}[/]: score {p['score']:.1f} ({p['bucket']}), "
                      f"percentile {p['percentile']}, probability {p['probability']:.3f} "
                      f"as of {p['score_date']}")
    table = Table("behaviour", "strongest factor", "value", "effect", "importance")
    for f in p["influential_factors"] or []:
        effect = "raises" if f["direction"] == "+" else "lowers"
        table.add_row(f.get("behaviour") or "-", f["name"], fmt_value(f["value"]), effect,
                      f["importance"])
    console.print(table)
    if len(result["history"]) > 1:
        console.print("Score history: " + ", ".join(
            f"{h['score_date']} {h['score']:.0f} ({h['bucket']})" for h in result["history"]))


def factors(
    name: str,
    top: Annotated[int, typer.Option(help="Show the N weightiest behaviours.")] = 10,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """What moves the scores: behaviours by weight, each with its strongest factors.

    A behaviour's weight is the mean, over the scored profiles, of |the sum of its factors'
    contributions| (log-odds; log-value for a clv instance); share is its part of all
    behaviours' weights.

    Example: likely factors buyers --top 5
    """
    document = open_workspace(workspace).factors(name)
    if json:
        return print_json(document)
    weight = {f["factor"]: f for f in document["factors"]}
    table = Table(title=f"What moves '{name}' scores (run {document['generated_for']})")
    table.add_column("behaviour", no_wrap=True)
    table.add_column("weight", justify="right", no_wrap=True)
    table.add_column("share", justify="right", no_wrap=True)
    table.add_column("strongest factors (weight)")
    for b in _behaviours(document)[:top]:
        strongest = [weight[f] for f in b["top_factors"][:3] if f in weight]
        table.add_row(b["name"], f"{b['mean_abs_shap']:.3f}", f"{b['share_pct']:.1f}%",
                      "\n".join(f"{f['name']} ({f['mean_abs_shap']:.3f})" for f in strongest))
    console.print(table)


def target(
    name: str,
    size: Annotated[int | None, typer.Option(help="Audience: the top N by score.")] = None,
    threshold: Annotated[float | None, typer.Option(
        help="Audience: everyone scoring at or above this (0-100).")] = None,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """What an audience buys: expected goal profiles, precision, share of all expected.

    Expected counts are sums of calibrated probabilities over the current run's scores; for a
    clv instance, sums of predicted value (and its mean per profile).

    Example: likely target buyers --size 10000
    """
    ws = open_workspace(workspace)
    result = ws.targeting(name, size=size, threshold=threshold)
    if json:
        return print_json(result)
    audience = (f"Top {result['profiles']:,} of {result['scored_profiles']:,} scored profiles "
                f"(scores of {result['score_date']}, lowest score "
                f"{fmt_value(result['lowest_score'])}):")
    if _is_value(ws, name):  # the "expected" figures of a clv run are predicted value
        mean = result["expected_precision"]
        console.print(
            f"{audience} predicted value {result['expected_goal_profiles']:,.0f}, "
            f"{'-' if mean is None else f'{mean:,.2f}'} per profile, "
            f"{fmt_value(result['captured_pct'])}% of all "
            f"{result['total_expected_goal_profiles']:,.0f} predicted.")
        return None
    precision = result["expected_precision"]
    console.print(
        f"{audience} {result['expected_goal_profiles']:,.0f} expected to meet the goal, "
        f"precision {'-' if precision is None else f'{precision:.1%}'}, "
        f"{fmt_value(result['captured_pct'])}% of all "
        f"{result['total_expected_goal_profiles']:,.0f} expected.")


def _behaviours(document: dict) -> list[dict]:
    """factors.json ``sources``, completed for runs written before they had names and shares."""
    sources = document.get("sources", [])
    total = sum(s["mean_abs_shap"] for s in sources) or 1.0
    return [{"name": behaviour_words(s["source"]), "top_factors": [],
             "share_pct": 100 * s["mean_abs_shap"] / total, **s} for s in sources]


def export(
    name: str,
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write.")],
    format: Annotated[str, typer.Option(help="csv, parquet or jsonl")] = "parquet",
    workspace: WorkspaceOption = None,
) -> None:
    """Export current scores (profile format).

    Example: likely export buyers --format csv --out buyers.csv
    """
    path = open_workspace(workspace).export(name, out, format=format)
    console.print(f"Wrote {path}")


def _date(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise typer.BadParameter(f"--as-of '{value}' is not a date like 2025-06-30.") from None
