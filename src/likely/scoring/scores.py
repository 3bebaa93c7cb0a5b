"""From probabilities to the numbers a marketer reads: score, percentile, bucket, reason codes.

- ``score`` = 100 × probability ÷ the scored population's 99th-percentile probability, capped at
  100: relative likelihood, so "High" (≥ 75 by default) means at least three quarters as likely as
  the top 1%.
- ``percentile`` = the rank: 100 is the top 1% most likely, 1 the least likely 1%.
- ``bucket`` applies the instance's cut-offs to the score: Low < 25 ≤ Medium < 75 ≤ High.
- reasons (``influential_factors``) are behaviours, not single features: a behaviour's
  contribution is the sum of its features' TreeSHAP values, told through its strongest feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

if TYPE_CHECKING:
    from likely.features.plan import FeatureDef

BUCKETS = ("Low", "Medium", "High")
TOP_FACTORS = 5
#: A behaviour whose contributions sum to less than this (in log-odds) moves nothing: no reason.
ZERO_CONTRIBUTION = 1e-12

#: One reason of one profile, as stored in ``influential_factors``: a behaviour, told through its
#: strongest feature for this profile.
FACTOR_TYPE = pa.struct([
    ("factor", pa.string()),        # the strongest feature's id, stable across runs
    ("name", pa.string()),          # that feature in words
    ("value", pa.string()),         # the profile's value of that feature, as text
    ("contribution", pa.float64()),  # the behaviour's signed TreeSHAP sum (log-odds)
    ("direction", pa.string()),     # "+" raises the likelihood, "-" lowers it
    ("importance", pa.string()),    # high / medium / low, one yardstick for the whole run
    ("behaviour", pa.string()),     # the behaviour in words ("cart adds")
    ("factor_contribution", pa.float64()),  # the strongest feature's own contribution
])


def relative_scores(probability: np.ndarray) -> tuple[np.ndarray, float]:
    """Score 0-100 and the reference (99th-percentile) probability it is relative to."""
    reference = float(np.quantile(probability, 0.99)) if len(probability) else 0.0
    if reference <= 0:
        return np.zeros_like(probability), reference
    return np.minimum(100.0, 100.0 * probability / reference).round(2), reference


def percentiles(ranking: np.ndarray) -> np.ndarray:
    """1..100: the share of the scored population ranked at or below this one, rounded up.

    100 = the most likely 1%; tied profiles share one percentile. Runs rank on the model's raw
    output: calibration is monotone, so the order is the probabilities' order, but an isotonic
    calibration's flat steps would otherwise tie thousands of profiles.
    """
    n = len(ranking)
    if n == 0:
        return np.zeros(0, dtype=np.int16)
    at_or_below = np.searchsorted(np.sort(ranking), ranking, side="right")
    return np.ceil(100.0 * at_or_below / n).clip(1, 100).astype(np.int16)


def buckets(score: np.ndarray, cutoffs: Sequence[float]) -> np.ndarray:
    low, high = cutoffs
    index = np.where(score >= high, 2, np.where(score >= low, 1, 0))
    return np.asarray(BUCKETS, dtype=object)[index]


@dataclass(frozen=True, eq=False)
class Behaviours:
    """The plan's features grouped by the behaviour they measure (their ``source``).

    Correlated features of one behaviour (counts, recency, active days of cart adds) split its
    credit; SHAP values add, so the behaviour's contribution for a profile is the exact sum of its
    features' contributions, and a profile's reasons become distinct behaviours.
    """

    ids: tuple[str, ...]  # feature ids, in model column order
    names: tuple[str, ...]  # feature words
    sources: tuple[str, ...]  # one per behaviour, in order of first appearance
    words: tuple[str, ...]  # each behaviour in a marketer's words
    of_feature: np.ndarray  # (features,) the behaviour index of each feature

    @classmethod
    def from_features(cls, features: Sequence[FeatureDef]) -> Behaviours:
        sources = tuple(dict.fromkeys(f.source for f in features))
        index = {s: i for i, s in enumerate(sources)}
        words = {f.source: f.behaviour for f in features}
        return cls(
            ids=tuple(f.id for f in features), names=tuple(f.name for f in features),
            sources=sources, words=tuple(words[s] for s in sources),
            of_feature=np.fromiter((index[f.source] for f in features), np.int32, len(features)),
        )

    def __len__(self) -> int:
        return len(self.sources)

    def members(self, behaviour: int) -> np.ndarray:
        """Feature indices of one behaviour, in plan order."""
        return np.flatnonzero(self.of_feature == behaviour)

    def sums(self, contributions: np.ndarray) -> np.ndarray:
        """``(rows, behaviours)``: each behaviour's contributions summed, from ``(rows, features)``
        contributions (no base column), through a 0/1 feature-to-behaviour indicator matrix."""
        indicator = np.zeros((len(self.ids), len(self)))
        indicator[np.arange(len(self.ids)), self.of_feature] = 1.0
        return contributions @ indicator

    def strongest(self, contributions: np.ndarray) -> np.ndarray:
        """``(rows, behaviours)``: per row, the feature with the largest |contribution| within
        each behaviour (the first in plan order on ties). Loops over behaviours, not rows."""
        magnitude = np.abs(contributions)
        out = np.empty((contributions.shape[0], len(self)), dtype=np.int32)
        for b in range(len(self)):
            members = self.members(b)
            out[:, b] = members[np.argmax(magnitude[:, members], axis=1)]
        return out


@dataclass(frozen=True, eq=False)
class Reasons:
    """Top reasons of consecutive rows, flattened: row ``i`` has ``counts[i]`` reasons, strongest
    first. Scoring keeps these small arrays per batch and labels them once the run's yardstick is
    known, so memory stays at rows × ``TOP_FACTORS`` numbers, not rows × features."""

    counts: np.ndarray  # (rows,) reasons per row
    behaviour: np.ndarray  # (n,) behaviour index
    contribution: np.ndarray  # (n,) the behaviour's summed contribution
    feature: np.ndarray  # (n,) the behaviour's strongest feature for this row
    factor_contribution: np.ndarray  # (n,) that feature's own contribution
    value: pa.Array  # (n,) that feature's value as text

    @classmethod
    def concat(cls, parts: Sequence[Reasons]) -> Reasons:
        values = [p.value for p in parts]
        return cls(
            counts=_join([p.counts for p in parts], np.int8),
            behaviour=_join([p.behaviour for p in parts], np.int32),
            contribution=_join([p.contribution for p in parts], np.float64),
            feature=_join([p.feature for p in parts], np.int32),
            factor_contribution=_join([p.factor_contribution for p in parts], np.float64),
            value=pa.concat_arrays(values) if values else pa.array([], pa.string()),
        )


def top_reasons(
    contributions: np.ndarray, values: Sequence[np.ndarray], behaviours: Behaviours,
    top: int = TOP_FACTORS,
) -> Reasons:
    """Per row, up to ``top`` behaviours by |summed contribution|, each with its strongest feature.

    ``contributions`` is rows × features (no base column); ``values`` holds each feature's raw
    values (one array per feature). A behaviour whose contributions sum to zero is not a reason,
    so a row may have fewer. Ties keep plan order. Vectorised: no Python loop over rows.
    """
    sums = behaviours.sums(contributions)
    k = min(top, len(behaviours))
    order = np.argsort(-np.abs(sums), axis=1, kind="stable")[:, :k]
    chosen = np.take_along_axis(sums, order, axis=1)
    keep = np.abs(chosen) >= ZERO_CONTRIBUTION  # zeros sort last, so kept reasons are a prefix
    feature = np.take_along_axis(behaviours.strongest(contributions), order, axis=1)[keep]
    rows = np.nonzero(keep)[0]
    return Reasons(
        counts=keep.sum(axis=1).astype(np.int8),
        behaviour=order[keep].astype(np.int32),
        contribution=chosen[keep],
        feature=feature,
        factor_contribution=contributions[rows, feature],
        value=pa.array(_values_as_text(values, rows, feature), pa.string()),
    )


IMPORTANCE_LEVELS = ("low", "medium", "high")


@dataclass(frozen=True)
class ImportanceScale:
    """One yardstick for every reason of every profile of a run.

    ``reference`` is the mean |contribution| over the scored population of the run's most
    influential behaviour. A reason is ``high`` when its |contribution| is at least ``high`` ×
    reference (half of what the strongest behaviour does on average), ``medium`` from ``medium`` ×
    reference (a tenth), else ``low``. One scale keeps labels monotone within a profile and
    comparable across profiles; tying it to the top behaviour keeps it stable when many weak
    features are added.
    """

    reference: float
    high: float = 0.5
    medium: float = 0.1

    @classmethod
    def from_mean_abs(cls, mean_abs: Sequence[float] | np.ndarray) -> ImportanceScale:
        values = np.asarray(mean_abs, dtype=float)
        return cls(reference=float(values.max()) if values.size else 0.0)

    def levels(self, contribution: np.ndarray) -> np.ndarray:
        """Index into ``IMPORTANCE_LEVELS`` for each contribution (0 = low, 2 = high)."""
        magnitude = np.abs(np.asarray(contribution, dtype=float))
        if self.reference <= 0:
            return np.zeros(magnitude.shape, dtype=np.int8)
        ratio = magnitude / self.reference
        return np.where(ratio >= self.high, 2, np.where(ratio >= self.medium, 1, 0)).astype(np.int8)

    def labels(self, contribution: np.ndarray) -> np.ndarray:
        return np.asarray(IMPORTANCE_LEVELS, dtype=object)[self.levels(contribution)]


def reason_codes(reasons: Reasons, behaviours: Behaviours, scale: ImportanceScale) -> pa.Array:
    """The ``influential_factors`` column: one list<FACTOR_TYPE> per row, built in Arrow."""
    structs = pa.StructArray.from_arrays(
        [
            _pick(behaviours.ids, reasons.feature),
            _pick(behaviours.names, reasons.feature),
            reasons.value,
            pa.array(reasons.contribution, pa.float64()),
            _pick(("-", "+"), (reasons.contribution > 0).astype(np.int8)),
            _pick(IMPORTANCE_LEVELS, scale.levels(reasons.contribution)),
            _pick(behaviours.words, reasons.behaviour),
            pa.array(reasons.factor_contribution, pa.float64()),
        ],
        fields=list(FACTOR_TYPE),
    )
    offsets = np.concatenate([[0], np.cumsum(reasons.counts, dtype=np.int64)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), structs)


def _pick(words: Sequence[str], index: np.ndarray) -> pa.Array:
    return pa.array(list(words), pa.string()).take(pa.array(index))


def _join(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


def _values_as_text(values: Sequence[np.ndarray], rows: np.ndarray, feats: np.ndarray) -> list:
    """Each reason's feature value as text, formatting each distinct value of a feature once
    (counts and days repeat: a million reasons hold a few thousand distinct values)."""
    out = np.empty(len(rows), dtype=object)
    for f in np.unique(feats):
        mask = feats == f
        codes, distinct = pd.factorize(np.asarray(values[f])[rows[mask]], use_na_sentinel=True)
        texts = np.array([*(_fmt(_plain(v)) for v in distinct), None], dtype=object)
        out[mask] = texts[codes]  # code -1 (missing) picks the trailing None
    return out.tolist()


def _plain(value: object) -> object:
    """A numpy scalar as the Python number it holds (what the text is made from)."""
    return value.item() if isinstance(value, np.generic) else value


def _fmt(value: object) -> str | None:
    """A feature value as text: 4 significant digits, whole numbers without a point.

    The value is first cut to 12 significant digits, so two computations of the same number
    that differ in the last bits (a sum taken in another order, another engine) read alike
    even on a rounding edge (39.355 computed as 39.35500000000001 or 39.35499999999999).
    """
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, float):
        value = float(f"{value:.12g}")
        return f"{value:.4g}" if not value.is_integer() else str(int(value))
    return str(value)
