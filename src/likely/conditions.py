"""Conditions: the SQL boolean expressions marketers write for goals, populations and segments.

``event_type = 'commerce.purchases' AND value > 50``, ``channel IN ('web', 'app')``,
``page_name LIKE '%pricing%'``, ``"commerce.order.priceTotal" >= 100``,
``extract(dow FROM timestamp) IN (0, 6)``.

Text is parsed with sqlglot, every node is checked against a whitelist, and the tree is compiled
to an Ibis expression over real column references: user text is never executed or pasted into SQL.

Allowed: comparisons, AND/OR/NOT, IN and NOT IN with literal lists, LIKE/ILIKE, IS [NOT] NULL,
BETWEEN, + - * / %, literals (text, numbers, TRUE/FALSE, NULL, DATE '…', TIMESTAMP '…',
CAST(literal AS DATE|TIMESTAMP)), the functions lower, upper, coalesce, length, abs, and date
parts: extract(year|month|day|hour|dow FROM col), date_part('…', col), year(col), month(col),
day(col), hour(col), dayofweek(col). A list column (a segment's ``reasons``) is tested with
``'cart adds' IN "purchase-30d".reasons``.

When the columns come with their types, the condition is also compiled against them once, so a
comparison of text with a number, or a text that is not a number where one is needed, is refused
when the condition is written, not when it first runs.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import ibis
import ibis.common.exceptions as com
import ibis.expr.datatypes as dt
import sqlglot
from sqlglot import exp

from likely.errors import ConditionError

if TYPE_CHECKING:
    import ibis.expr.types as ir

DATE_PARTS = ("year", "month", "day", "hour", "dow")
FUNCTIONS = ("lower", "upper", "coalesce", "length", "abs", "date_part", "year", "month", "day",
             "hour", "dayofweek", "extract")
_COMPARISONS = {exp.EQ: "__eq__", exp.NEQ: "__ne__", exp.GT: "__gt__", exp.GTE: "__ge__",
                exp.LT: "__lt__", exp.LTE: "__le__"}
_ARITHMETIC = {exp.Add: "__add__", exp.Sub: "__sub__", exp.Mul: "__mul__", exp.Div: "__truediv__",
               exp.Mod: "__mod__"}
_BOOLEAN_ROOTS = (exp.And, exp.Or, exp.Not, exp.In, exp.Like, exp.ILike, exp.Is, exp.Between,
                  exp.Boolean, *_COMPARISONS)


@dataclass(frozen=True)
class Condition:
    """A validated condition: its text, the columns it reads, and its parsed tree."""

    text: str
    columns: frozenset[str]
    tree: exp.Expression = field(repr=False, compare=False)


def parse_condition(
    text: str, columns: Mapping[str, dt.DataType] | Iterable[str]
) -> Condition:
    """Parse and validate ``text`` against the known ``columns``.

    >>> parse_condition("value > 5", ["value"]).columns
    frozenset({'value'})
    """
    known = dict(columns) if isinstance(columns, Mapping) else dict.fromkeys(columns)
    if not text or not text.strip():
        raise ConditionError("The condition is empty. Write e.g. event_type = "
                             "'commerce.purchases'.", token="", condition=text or "")
    tree = _parse(text)
    used: set[str] = set()
    _check(tree, text, known, used)
    root = tree.unnest() if isinstance(tree, exp.Paren) else tree
    if not isinstance(root, _BOOLEAN_ROOTS):
        raise ConditionError(
            f"Condition '{text}' is not true/false: it computes a value. Compare it, e.g. "
            f"'{text} > 0'.", token=root.sql(), condition=text)
    condition = Condition(text, frozenset(used), tree)
    if known and all(isinstance(kind, dt.DataType) for kind in known.values()):
        _check_types(condition, known)
    return condition


def _check_types(condition: Condition, known: dict[str, dt.DataType]) -> None:
    """Compile against an empty table of the known types: Ibis refuses mismatched types."""
    try:
        compile_condition(condition, ibis.table(known, name="condition"))
    except ConditionError:
        raise
    except (com.IbisTypeError, AttributeError, TypeError, ValueError) as exc:
        reason = str(exc).split("\n")[0]
        if isinstance(exc, com.IbisTypeError):
            reason = re.sub(r"Literal\((.*?)\):\w+", r"\1", reason)
        elif isinstance(exc, (AttributeError, TypeError)):
            reason = "an operation does not apply to the type of a column"
        raise ConditionError(
            f"Types do not match in condition '{condition.text}': {reason}. Columns: "
            + ", ".join(f"{name} ({kind})" for name, kind in sorted(known.items())
                        if name in condition.columns) + ".",
            token=condition.text, condition=condition.text) from None


def compile_condition(condition: Condition, table: ir.Table) -> ir.BooleanValue:
    """The condition as an Ibis boolean over ``table``'s columns."""
    return _compile(condition.tree, table)


def combine(
    conditions: Sequence[Condition], match: Literal["all", "any"], table: ir.Table
) -> ir.BooleanValue:
    """AND (``all``) or OR (``any``) of several conditions; true when there are none."""
    if not conditions:
        return ibis.literal(True)
    compiled = [compile_condition(c, table) for c in conditions]
    return ibis.and_(*compiled) if match == "all" else ibis.or_(*compiled)


def _parse(text: str) -> exp.Expression:
    if ";" in text:
        raise ConditionError(f"Condition '{text}' contains ';': one expression only, no "
                             "statements.", token=";", condition=text)
    if "--" in text or "/*" in text:
        raise ConditionError(f"Condition '{text}' contains a comment ('--' or '/*'), which is "
                             "not allowed.", token="--" if "--" in text else "/*", condition=text)
    try:
        statements = sqlglot.parse(text, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        error = exc.errors[0] if exc.errors else {}
        token = error.get("highlight") or ""
        raise ConditionError(f"Condition '{text}' is not valid: {error.get('description', exc)} "
                             f"near '{token}'.", token=token, condition=text) from None
    except sqlglot.errors.TokenError:  # an unclosed quote
        quote = next((q for q in ("'", '"') if text.count(q) % 2), "'")
        raise ConditionError(f"Condition '{text}' has an unclosed {quote}: close it "
                             "(text in single quotes, names in double).", token=quote,
                             condition=text) from None
    if len(statements) != 1 or statements[0] is None:
        raise ConditionError(f"Condition '{text}' must be a single expression.", token=text,
                             condition=text)
    return statements[0]


def _check(node: exp.Expression, text: str, known: dict, used: set[str]) -> None:
    if isinstance(node, exp.Column):
        used.add(_column_name(node, text, known))
        return
    if isinstance(node, (exp.Literal, exp.Boolean, exp.Null)):
        return
    if isinstance(node, exp.Cast):
        if not isinstance(node.this, exp.Literal) or not node.to.is_type(
                "date", "timestamp", "timestampntz", "timestamptz"):
            raise _refuse(text, node.sql(), "only CAST('…' AS DATE|TIMESTAMP) of a literal")
        return
    allowed = (exp.And, exp.Or, exp.Not, exp.Paren, exp.In, exp.Like, exp.ILike, exp.Is,
               exp.Between, exp.Neg, exp.Lower, exp.Upper, exp.Coalesce, exp.Length, exp.Abs,
               *_COMPARISONS, *_ARITHMETIC)
    if not isinstance(node, allowed):
        if isinstance(node, exp.Func):
            _check_function(node, text, known, used)
            return
        raise _refuse(text, node.sql() or node.key, "comparisons, AND/OR/NOT, IN, LIKE, IS NULL, "
                      "BETWEEN, arithmetic and the functions " + ", ".join(FUNCTIONS))
    if isinstance(node, exp.In) and (node.args.get("query") or node.args.get("unnest")):
        raise _refuse(text, node.sql(), "IN with a list of literal values")
    if isinstance(node, exp.In) and _list_column(node) is not None:
        column = _list_column(node)
        name = _column_name(column, text, known)
        kind = known.get(name)
        if kind is not None and not (isinstance(kind, dt.DataType) and kind.is_array()):
            raise _refuse(text, node.sql(), f"'value IN column' only for list columns; '{name}' "
                          "is not a list: write column IN ('a', 'b')")
        if not isinstance(node.this, exp.Literal):
            raise _refuse(text, node.this.sql(), f"a literal value before IN {name}")
        used.add(name)
        return
    for child in node.iter_expressions():
        _check(child, text, known, used)


def _check_function(node: exp.Expression, text: str, known: dict, used: set[str]) -> None:
    name, part, argument = _date_part(node)
    if name is None:
        fn = node.name if isinstance(node, exp.Anonymous) else node.sql_name()
        written = re.search(re.escape(fn), text, re.IGNORECASE)  # as the user spelled it
        raise _refuse(text, written.group(0) if written else fn,
                      "the functions " + ", ".join(FUNCTIONS))
    if part not in DATE_PARTS:
        raise _refuse(text, str(part), "date parts " + ", ".join(DATE_PARTS))
    _check(argument, text, known, used)


def _date_part(node: exp.Expression) -> tuple[str | None, str | None, Any]:
    """(function, part, argument) for the date-part forms; (None, …) for anything else."""
    if isinstance(node, exp.Extract):
        return "extract", node.this.name.lower(), node.expression
    if isinstance(node, exp.Anonymous) and node.name.lower() == "date_part":
        args = node.expressions
        if len(args) == 2 and isinstance(args[0], exp.Literal):
            return "date_part", args[0].this.lower(), args[1]
    single = {exp.Year: "year", exp.Month: "month", exp.Day: "day", exp.DayOfWeek: "dow"}
    for cls, part in single.items():
        if isinstance(node, cls):
            return part, part, node.this
    if isinstance(node, exp.Anonymous) and node.name.lower() in ("hour", "dayofweek") and len(
            node.expressions) == 1:
        return node.name.lower(), "hour" if node.name.lower() == "hour" else "dow", \
            node.expressions[0]
    if isinstance(node, exp.Hour):
        return "hour", "hour", node.this
    return None, None, None


def _column_name(node: exp.Column, text: str, known: dict) -> str:
    name = ".".join(part.name for part in node.parts)
    if name not in known:
        close = difflib.get_close_matches(name, list(known), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConditionError(
            f"Unknown column '{name}' in condition '{text}'.{hint} Known columns: "
            f"{', '.join(sorted(known))}.", token=name, condition=text)
    return name


def _list_column(node: exp.In) -> exp.Column | None:
    """The column of ``'value' IN column`` (or ``IN (column)``), which tests list membership."""
    field_ = node.args.get("field")
    if isinstance(field_, exp.Column):
        return field_
    if len(node.expressions) == 1 and isinstance(node.expressions[0], exp.Column) and \
            isinstance(node.this, exp.Literal):
        return node.expressions[0]
    return None


def _refuse(text: str, token: str, allowed: str) -> ConditionError:
    return ConditionError(f"'{token}' is not allowed in condition '{text}'. Allowed: {allowed}.",
                          token=token, condition=text)


def _compile(node: exp.Expression, t: ir.Table) -> Any:
    if isinstance(node, exp.Paren):
        return _compile(node.this, t)
    if isinstance(node, exp.Column):
        return t[".".join(p.name for p in node.parts)]
    if isinstance(node, exp.Literal):
        return node.this if node.is_string else _number(node.this)
    if isinstance(node, exp.Boolean):
        return ibis.literal(bool(node.this))
    if isinstance(node, exp.Null):
        return ibis.null()
    if isinstance(node, exp.Cast):
        target = "date" if node.to.is_type("date") else "timestamp"
        return ibis.literal(node.this.this).cast(target)
    if isinstance(node, exp.And):
        return _compile(node.this, t) & _compile(node.expression, t)
    if isinstance(node, exp.Or):
        return _compile(node.this, t) | _compile(node.expression, t)
    if isinstance(node, exp.Not):
        return ~_compile(node.this, t)
    if isinstance(node, exp.Neg):
        return -_compile(node.this, t)
    return _compile_operation(node, t)


def _compile_operation(node: exp.Expression, t: ir.Table) -> Any:
    for cls, method in {**_COMPARISONS, **_ARITHMETIC}.items():
        if isinstance(node, cls):
            left, right = _aligned(_compile(node.this, t), _compile(node.expression, t))
            return getattr(left, method)(right)
    if isinstance(node, exp.In) and _list_column(node) is not None:
        return t[".".join(p.name for p in _list_column(node).parts)].contains(
            _compile(node.this, t))
    if isinstance(node, exp.In):
        column = _compile(node.this, t)
        values = [_aligned(column, _compile(v, t))[1] for v in node.expressions]
        return column.isin(values)
    if isinstance(node, (exp.Like, exp.ILike)):
        column = _compile(node.this, t)
        pattern = _compile(node.expression, t)
        result = column.ilike(pattern) if isinstance(node, exp.ILike) else column.like(pattern)
        return ~result if node.args.get("negate") else result
    if isinstance(node, exp.Is):
        return _compile(node.this, t).isnull()
    if isinstance(node, exp.Between):
        column = _compile(node.this, t)
        low = _aligned(column, _compile(node.args["low"], t))[1]
        high = _aligned(column, _compile(node.args["high"], t))[1]
        return column.between(low, high)
    return _compile_function(node, t)


def _compile_function(node: exp.Expression, t: ir.Table) -> Any:
    if isinstance(node, exp.Lower):
        return _compile(node.this, t).lower()
    if isinstance(node, exp.Upper):
        return _compile(node.this, t).upper()
    if isinstance(node, exp.Length):
        return _compile(node.this, t).length()
    if isinstance(node, exp.Abs):
        return _compile(node.this, t).abs()
    if isinstance(node, exp.Coalesce):
        return ibis.coalesce(_compile(node.this, t), *(_compile(e, t) for e in node.expressions))
    _, part, argument = _date_part(node)
    value = _compile(argument, t)
    if part == "dow":  # Sunday = 0 as in SQL; Ibis counts from Monday = 0
        return (value.day_of_week.index() + 1) % 7
    return getattr(value, part)()


def _aligned(left: Any, right: Any) -> tuple[Any, Any]:
    """Cast a text literal to the column's type, so `timestamp >= '2025-01-01'` works."""
    if isinstance(right, str) and hasattr(left, "type") and (
            left.type().is_temporal() or left.type().is_numeric()):
        _check_literal(right, left.type())
        return left, ibis.literal(right).cast(left.type())
    if isinstance(left, str) and hasattr(right, "type"):
        return _aligned(right, left)[::-1]
    return left, right


def _check_literal(text: str, kind: dt.DataType) -> None:
    """A text compared with a number or a date must read as one (else the engine fails later)."""
    try:
        if kind.is_numeric():
            float(text)
        else:
            datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"'{text}' is not a {'number' if kind.is_numeric() else 'date'}, "
                         f"but is compared with a {kind} column") from None


def _number(text: str) -> int | float:
    return float(text) if any(c in text for c in ".eE") else int(text)
