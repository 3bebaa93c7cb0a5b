"""The "buy till you die" baseline for customer lifetime value: how often each customer will buy
again, and for how much, from nothing but their purchase history.

Two classic models, fitted by maximum likelihood on one row per customer:

- **BG/NBD** (Fader, Hardie & Lee 2005, "Counting your customers the easy way"). While alive, a
  customer buys at a steady rate λ ~ Gamma(r, α) per period; after each purchase they drop out
  for good with probability p ~ Beta(a, b). A customer is summarised by ``x`` (repeat purchases),
  ``t_x`` (when the last one happened) and ``T`` (how long they have been watched), both times
  counted from their first purchase.
- **Gamma-Gamma** (Fader, Hardie & Lee 2005, "RFM and CLV"; Fader & Hardie 2013, "The Gamma-Gamma
  Model of Monetary Value"). Spend per purchase varies around each customer's own mean, and those
  means vary across customers. A customer's expected spend pulls their observed mean ``m`` towards
  the population mean, the less the more purchases ``x`` it rests on. The model assumes spend does
  not depend on how often a customer buys: check the correlation of ``x`` and ``m`` first.

:func:`rfm_summary` computes ``x``, ``t_x``, ``T`` and ``m`` in the engine (an Ibis expression);
:func:`clv` multiplies expected purchases by expected spend.

Time unit: ``alpha`` and every time (``t_x``, ``T``, a horizon) share one unit, the
``period_days`` given to :func:`rfm_summary`. A model fitted in weeks predicts in weeks.

Leakage trap: fit on a summary whose ``cutoff`` is the start of the period being predicted. A
summary taken later already contains the purchases the model is asked to foresee.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self

import ibis
import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

from likely.data.schema import PROFILE_ID, TIMESTAMP, VALUE
from likely.errors import ConfigError, DataError
from likely.features.plan import naive_utc

if TYPE_CHECKING:
    import ibis.expr.types as ir

EPOCH = datetime(1970, 1, 1)
SECONDS_PER_DAY = 86400
# Log-parameters are searched within ±LOG_BOUND (values from 3e-7 to 3e6): a fit that ends on
# that edge has a parameter the data cannot pin down.
LOG_BOUND = 15.0
# Eq. 10 divides by (a - 1); within this distance of 1 it is evaluated either side and averaged.
_NEAR_ONE = 1e-6


# -- fitted parameters ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Params:
    """Positive, finite model parameters that round-trip through JSON with the model's name."""

    MODEL: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in fields(self):  # plain floats (not numpy scalars) for JSON and a readable repr
            object.__setattr__(self, f.name, float(getattr(self, f.name)))
        bad = {k: v for k, v in asdict(self).items() if not (math.isfinite(v) and v > 0)}
        if bad:
            raise DataError(f"{self.MODEL} parameters must be positive and finite; got {bad}.")

    def to_dict(self) -> dict[str, Any]:
        """The parameters as JSON-ready numbers, with the model's name."""
        return {"model": self.MODEL, **{k: float(v) for k, v in asdict(self).items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Parameters saved by :meth:`to_dict`; anything else is refused, saying what differs."""
        names = [f.name for f in fields(cls)]
        if data.get("model") != cls.MODEL:
            raise DataError(f"These parameters are for model {data.get('model')!r}, not "
                            f"{cls.MODEL!r}. Load them with the matching class.")
        given = set(data) - {"model"}
        if given != set(names):
            raise DataError(f"{cls.MODEL} parameters need exactly {names}; got {sorted(given)}.")
        return cls(**{k: float(data[k]) for k in names})


@dataclass(frozen=True)
class BGNBDParams(_Params):
    """BG/NBD: purchase rate ~ Gamma(shape ``r``, rate ``alpha``) per period while alive; chance
    of dropping out after each purchase ~ Beta(``a``, ``b``).

    >>> BGNBDParams.from_dict(BGNBDParams(0.24, 4.41, 0.79, 2.43).to_dict()).alpha
    4.41
    """

    MODEL: ClassVar[str] = "bg/nbd"
    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True)
class GammaGammaParams(_Params):
    """Gamma-Gamma: spend per purchase ~ Gamma(shape ``p``, rate ν) around each customer's mean,
    with ν ~ Gamma(shape ``q``, rate ``v``) across customers.

    >>> round(GammaGammaParams(6.25, 3.74, 15.44).mean_spend, 2)
    35.22
    """

    MODEL: ClassVar[str] = "gamma-gamma"
    p: float
    q: float
    v: float

    @property
    def mean_spend(self) -> float:
        """Population mean spend per purchase, p·v/(q-1); undefined (an error) when q ≤ 1."""
        if self.q <= 1:
            raise DataError(
                f"The spend model's q is {self.q:.3g} (at most 1): its spread of customer means "
                "has no finite average, so expected spend is undefined. Fit it on more "
                "customers, or use the observed mean spend instead.")
        return self.p * self.v / (self.q - 1)


# -- BG/NBD --------------------------------------------------------------------------------------


def bgnbd_log_likelihood(params: BGNBDParams, x: Any, t_x: Any, T: Any) -> np.ndarray:
    """Each customer's log-likelihood under BG/NBD (eq. 6 of Fader, Hardie & Lee 2005).

    >>> round(float(bgnbd_log_likelihood(BGNBDParams(1, 1, 1, 1), 0, 0, 1.0)[0]), 4)
    -0.6931
    """
    x, t_x, T = _floats(x, t_x, T)
    return _bgnbd_ll(params.r, params.alpha, params.a, params.b, x, t_x, T)


def _bgnbd_ll(r: float, alpha: float, a: float, b: float,
              x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + betaln(a, b + x) - betaln(a, b)
    alive = -(r + x) * np.log(alpha + T)
    # Dropped out right after the last purchase: B(a+1, b+x-1)/B(a, b+x) = a/(b+x-1). Only a
    # customer with a repeat purchase can have done so (the model's first purchase is at time 0).
    repeat = np.maximum(x, 1)
    gone = np.where(x > 0, np.log(a) - np.log(b + repeat - 1) - (r + x) * np.log(alpha + t_x),
                    -np.inf)
    return common + np.logaddexp(alive, gone)


def fit_bgnbd(x: Any, t_x: Any, T: Any, *, weights: Any = None,
              penalty: float = 0.0) -> BGNBDParams:
    """BG/NBD parameters by maximum likelihood.

    ``weights`` counts customers per row, so a fit on the distinct (x, t_x, T) rows with their
    counts equals the fit on every customer (rows are merged that way here anyway, which is what
    makes fitting fast). ``penalty`` adds penalty·(r² + α² + a² + b²) to the mean negative
    log-likelihood per customer, as lifetimes' ``penalizer_coef`` does: a small value keeps the fit
    finite when too few customers pin a parameter down.

    >>> fit_bgnbd([0, 2, 5], [0, 10.0, 30.0], [40.0, 40.0, 40.0])  # doctest: +SKIP
    """
    _check_penalty(penalty)
    x, t_x, T = _check_history(*_floats(x, t_x, T))
    (x, t_x, T), counts = _distinct([x, t_x, T], weights)
    # Conditioning: times of order 10 keep alpha (which is in time units) near the other three.
    scale = 10.0 / T.max() if T.max() > 0 else 1.0
    x_s, t_s, T_s = x, t_x * scale, T * scale

    def loss(theta: np.ndarray) -> float:
        r, alpha, a, b = np.exp(theta)
        nll = -np.dot(counts, _bgnbd_ll(r, alpha, a, b, x_s, t_s, T_s)) / counts.sum()
        return float(nll + penalty * (r**2 + (alpha / scale) ** 2 + a**2 + b**2))

    r, alpha, a, b = np.exp(_maximise(loss, 4, ["r", "alpha", "a", "b"], "BG/NBD"))
    return BGNBDParams(r, alpha / scale, a, b)


def probability_active(params: BGNBDParams, x: Any, t_x: Any, T: Any) -> np.ndarray:
    """P(alive): the chance each customer has not dropped out by ``T``.

    A customer without a repeat purchase is alive by the model's convention (it lets a customer
    drop out only right after a purchase, and the first one opens the record): 1 for x = 0.

    >>> float(probability_active(BGNBDParams(0.24, 4.41, 0.79, 2.43), 0, 0, 30)[0])
    1.0
    """
    x, t_x, T = _floats(x, t_x, T)
    return np.exp(-np.logaddexp(0.0, _log_odds_gone(params, x, t_x, T)))


def _log_odds_gone(params: BGNBDParams, x: np.ndarray, t_x: np.ndarray,
                   T: np.ndarray) -> np.ndarray:
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    repeat = np.maximum(x, 1)
    odds = (np.log(a) - np.log(b + repeat - 1)
            + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x)))
    return np.where(x > 0, odds, -np.inf)


def expected_purchases(params: BGNBDParams, t: Any, x: Any, t_x: Any, T: Any) -> np.ndarray:
    """Expected repeat purchases in the next ``t`` periods of customers with history (x, t_x, T):
    eq. 10 of Fader, Hardie & Lee 2005.

    >>> p = BGNBDParams(0.243, 4.414, 0.793, 2.426)
    >>> round(float(expected_purchases(p, 39, 2, 30.43, 38.86)[0]), 2)
    1.23
    """
    t, x, t_x, T = _floats(t, x, t_x, T)
    if abs(params.a - 1) >= _NEAR_ONE:
        return _eq10(params, t, x, t_x, T)
    # (a-1) divides a bracket that also vanishes at a = 1; both sides of it are smooth.
    below, above = (_eq10(_with_a(params, 1 + s * _NEAR_ONE), t, x, t_x, T) for s in (-1, 1))
    return (below + above) / 2


def _eq10(params: BGNBDParams, t: np.ndarray, x: np.ndarray, t_x: np.ndarray,
          T: np.ndarray) -> np.ndarray:
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    c = a + b + x - 1
    z = t / (alpha + T + t)
    # Eq. 10 needs (1-z)^(r+x)·2F1(r+x, b+x; c; z). Euler's transformation turns it into
    # (1-z)^(a-1)·2F1(a+b-1-r, a-1; c; z), whose parameters stay small however often a customer
    # bought; the direct series overflows for frequent buyers and long horizons.
    tail = np.exp((a - 1) * np.log1p(-z)) * hyp2f1(a + b - 1 - r, a - 1, c, z)
    lost = ~np.isfinite(tail)
    if lost.any():  # scipy's hyp2f1 has rough regions too: try the direct series there
        with np.errstate(all="ignore"):
            direct = np.exp((r + x) * np.log1p(-z)) * hyp2f1(r + x, b + x, c, z)
        tail = np.where(lost, direct, tail)
    if not np.all(np.isfinite(tail)):
        raise DataError("Expected purchases could not be computed for some customers (the "
                        "hypergeometric function did not converge). Check that the times are "
                        "in the unit the model was fitted in.")
    return c / (a - 1) * (1 - tail) * probability_active(params, x, t_x, T)


def _with_a(params: BGNBDParams, a: float) -> BGNBDParams:
    return BGNBDParams(params.r, params.alpha, a, params.b)


def expected_purchases_new(params: BGNBDParams, t: Any) -> np.ndarray:
    """Expected purchases in the first ``t`` periods of a new customer, after the first one
    (eq. 9 of Fader, Hardie & Lee 2005: eq. 10 with nothing observed yet).

    >>> round(float(expected_purchases_new(BGNBDParams(0.243, 4.414, 0.793, 2.426), 39)[0]), 3)
    1.197
    """
    (t,) = _floats(t)
    zero = np.zeros_like(t)
    return expected_purchases(params, t, zero, zero, zero)


# -- Gamma-Gamma ---------------------------------------------------------------------------------


def gamma_gamma_log_likelihood(params: GammaGammaParams, x: Any, m: Any) -> np.ndarray:
    """Each customer's log-density of their mean spend ``m`` over ``x`` repeat purchases (both
    positive; others have no spend to explain and are refused).

    >>> round(float(gamma_gamma_log_likelihood(GammaGammaParams(1, 2, 1), 1, 1.0)[0]), 4)
    -1.3863
    """
    x, m = _floats(x, m)
    if not np.all((x > 0) & (m > 0)):
        raise DataError("The spend model's likelihood needs x > 0 and a positive mean spend m "
                        f"for every customer; {int(np.sum(~((x > 0) & (m > 0))))} rows are not.")
    return _gamma_gamma_ll(params.p, params.q, params.v, x, m)


def _gamma_gamma_ll(p: float, q: float, v: float, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    px = p * x
    return (gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v)
            + (px - 1) * np.log(m) + px * np.log(x) - (px + q) * np.log(v + m * x))


def fit_gamma_gamma(x: Any, m: Any, *, weights: Any = None,
                    penalty: float = 0.0) -> GammaGammaParams:
    """Gamma-Gamma parameters by maximum likelihood on the customers with spend to explain.

    Customers with no repeat purchase (x = 0), or whose mean spend ``m`` is missing, zero or
    negative (refunds outweighing purchases), are left out of the fit: the model has no place for
    them. :func:`expected_spend` gives them the population mean. ``weights`` and ``penalty`` work
    as in :func:`fit_bgnbd` (penalty on p² + q² + v²).

    >>> fit_gamma_gamma([1, 2, 3, 1], [20.0, 35.5, 28.0, 0.0])  # doctest: +SKIP
    """
    _check_penalty(penalty)
    x, m = _floats(x, m)
    keep = (x > 0) & np.isfinite(m) & (m > 0)
    w = _weights(weights, len(x))[keep]
    if np.count_nonzero(w) < 2:
        raise DataError("The spend model needs at least two customers with a repeat purchase and "
                        f"a positive mean spend; found {np.count_nonzero(w)}.")
    (x, m), counts = _distinct([x[keep], m[keep]], w)
    # v is in money units: fitting on m / scale keeps it near 1, and v·scale is the answer.
    scale = float(np.average(m, weights=counts))

    def loss(theta: np.ndarray) -> float:
        p, q, v = np.exp(theta)
        nll = -np.dot(counts, _gamma_gamma_ll(p, q, v, x, m / scale)) / counts.sum()
        return float(nll + penalty * (p**2 + q**2 + (v * scale) ** 2))

    p, q, v = np.exp(_maximise(loss, 3, ["p", "q", "v"], "Gamma-Gamma"))
    return GammaGammaParams(p, q, v * scale)


def expected_spend(params: GammaGammaParams, x: Any, m: Any) -> np.ndarray:
    """Expected spend per purchase of each customer:
    (q-1)/(px+q-1) · pv/(q-1) + px/(px+q-1) · m, their mean spend weighed against the population's.

    Customers left out of the fit (x = 0, or ``m`` missing or ≤ 0) get the population mean
    p·v/(q-1). Raises :class:`~likely.errors.DataError` when q ≤ 1 (no population mean).

    >>> g = GammaGammaParams(6.25, 3.74, 15.44)
    >>> [round(float(s), 2) for s in expected_spend(g, [0, 1, 10], [None, 50.0, 50.0])]
    [35.22, 45.49, 49.38]
    """
    x, m = _floats(x, m)
    population = params.mean_spend
    usable = (x > 0) & np.isfinite(m) & (m > 0)
    px = params.p * np.where(usable, x, 0.0)
    own = np.where(usable, m, 0.0)
    weight = px / (px + params.q - 1)
    return (1 - weight) * population + weight * own


# -- value ---------------------------------------------------------------------------------------


def clv(bgnbd: BGNBDParams, gg: GammaGammaParams, horizon: float, x: Any, t_x: Any, T: Any,
        m: Any, *, discount: float = 0.0) -> np.ndarray:
    """Expected value of each customer's purchases in the next ``horizon`` periods: expected
    purchases × expected spend per purchase (the Gamma-Gamma independence assumption).

    With ``discount`` (a rate per period), purchases expected in period k are worth
    (1 + discount)^-k; the default 0 values every purchase at face value.

    >>> bg, gg = BGNBDParams(0.243, 4.414, 0.793, 2.426), GammaGammaParams(6.25, 3.74, 15.44)
    >>> [round(float(v), 2) for v in clv(bg, gg, 39, [0, 2], [0, 30.43], [38.86] * 2, [0, 50])]
    [6.87, 58.04]
    """
    if not (math.isfinite(horizon) and horizon > 0):
        raise ConfigError(f"The horizon must be a positive number of periods; got {horizon}.")
    if not (math.isfinite(discount) and discount >= 0):
        raise ConfigError(f"The discount rate must be zero or positive; got {discount}.")
    spend = expected_spend(gg, x, m)
    if discount == 0:
        return expected_purchases(bgnbd, horizon, x, t_x, T) * spend
    ends = [*range(1, math.ceil(horizon)), horizon]
    total, before = 0.0, 0.0
    for k in ends:
        upto = expected_purchases(bgnbd, k, x, t_x, T)
        total = total + (upto - before) / (1 + discount) ** k
        before = upto
    return total * spend


# -- data ----------------------------------------------------------------------------------------


def rfm_summary(purchases: ir.Table, *, cutoff: datetime | date,
                period_days: float = 1) -> ir.Table:
    """One row per customer who bought before ``cutoff``: the inputs of both models, computed in
    the engine.

    ``purchases`` has ``profile_id``, ``timestamp`` (naive UTC, or a date) and ``value``, already
    filtered to purchases. Only purchases strictly before ``cutoff`` count, and purchases on the
    same calendar day are one purchase (their values summed), as in the classic CDNOW analysis and
    lifetimes. Columns:

    - ``frequency``: purchase days minus one (repeat purchases), an integer;
    - ``recency``: time from the first purchase day to the last;
    - ``T``: time from the first purchase day to the last day observed (the day of the last
      moment before ``cutoff``: the day before it when ``cutoff`` is a midnight);
    - ``monetary``: mean value of the repeat purchase days (the first day left out), null when
      there is none; a null ``value`` counts as no value.

    Times are whole days divided by ``period_days`` (7 gives weeks, fractional).

    Leakage trap: to predict a period, summarise with ``cutoff`` at its start; a later cutoff
    puts the purchases to be predicted into the model's inputs.

    >>> summary = rfm_summary(purchases, cutoff=datetime(1997, 10, 1), period_days=7)
    ... # doctest: +SKIP
    """
    missing = [c for c in (PROFILE_ID, TIMESTAMP, VALUE) if c not in purchases.columns]
    if missing:
        raise DataError(f"The purchases table has no column {', '.join(missing)}; it needs "
                        f"{PROFILE_ID}, {TIMESTAMP} and {VALUE}.")
    if not (math.isfinite(period_days) and period_days > 0):
        raise ConfigError(f"period_days must be a positive number of days; got {period_days}.")
    cutoff = naive_utc(cutoff)
    seconds = (cutoff - EPOCH).total_seconds()
    last_day = math.ceil(seconds / SECONDS_PER_DAY) - 1
    moment = purchases[TIMESTAMP]
    if moment.type().is_date():
        moment = moment.cast("timestamp")
    events = purchases.select(PROFILE_ID, _at=moment, _value=purchases[VALUE].cast("float64"))
    past = events.filter(events._at < ibis.literal(cutoff, type="timestamp"))
    past = past.mutate(_day=(past._at.epoch_seconds() / SECONDS_PER_DAY).floor())
    daily = past.group_by([PROFILE_ID, "_day"]).aggregate(_spend=past._value.sum())
    daily = daily.mutate(_first=daily._day.min().over(group_by=daily[PROFILE_ID]))
    return daily.group_by(PROFILE_ID).aggregate(
        frequency=(daily.count() - 1).cast("int64"),
        recency=((daily._day.max() - daily._first.min()) / period_days).cast("float64"),
        T=((ibis.literal(last_day) - daily._first.min()) / period_days).cast("float64"),
        monetary=daily._spend.mean(where=daily._day > daily._first).cast("float64"),
    )


# -- shared --------------------------------------------------------------------------------------


def _floats(*columns: Any) -> list[np.ndarray]:
    """Broadcast inputs to float arrays of at least one dimension (None reads as NaN)."""
    arrays = [np.atleast_1d(np.asarray(c, dtype=float)) for c in columns]
    return [np.array(a, dtype=float) for a in np.broadcast_arrays(*arrays)]


def _check_history(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> list[np.ndarray]:
    """Refuse histories the model cannot have produced, naming how many rows and why."""
    problems = {
        "a missing value": ~(np.isfinite(x) & np.isfinite(t_x) & np.isfinite(T)),
        "x not a whole number ≥ 0": (x < 0) | (x != np.round(x)),
        "t_x outside 0..T": (t_x < 0) | (t_x > T),
        "t_x > 0 with no repeat purchase": (x == 0) & (t_x > 0),
    }
    found = {name: int(np.count_nonzero(rows)) for name, rows in problems.items() if rows.any()}
    if found:
        raise DataError(f"Purchase histories (x, t_x, T) are invalid: {found} rows. frequency, "
                        "recency and T from rfm_summary always qualify.")
    return [x, t_x, T]


def _check_penalty(penalty: float) -> None:
    if not (math.isfinite(penalty) and penalty >= 0):
        raise ConfigError(f"The penalty must be zero or a small positive number; got {penalty}.")


def _weights(weights: Any, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    w = np.asarray(weights, dtype=float)
    if w.shape != (n,) or not np.all(np.isfinite(w) & (w >= 0)):
        raise DataError(f"weights must be {n} counts, each zero or more.")
    return w


def _distinct(columns: list[np.ndarray], weights: Any) -> tuple[list[np.ndarray], np.ndarray]:
    """The distinct rows of ``columns`` with their summed weights (customer counts)."""
    w = _weights(weights, len(columns[0]))
    rows, inverse = np.unique(np.column_stack(columns), axis=0, return_inverse=True)
    counts = np.bincount(inverse.ravel(), weights=w, minlength=len(rows))
    keep = counts > 0
    if not keep.any():
        raise DataError("There is nothing to fit: every weight is zero.")
    return [rows[keep, i] for i in range(rows.shape[1])], counts[keep]


def _maximise(loss: Callable[[np.ndarray], float], n: int, names: list[str],
              model: str) -> np.ndarray:
    """Log-parameters minimising ``loss``: L-BFGS-B from all-ones, then a Nelder-Mead polish
    (the finite-difference gradient stops L-BFGS-B a little short of the optimum)."""
    bounds = [(-LOG_BOUND, LOG_BOUND)] * n
    first = minimize(loss, np.zeros(n), method="L-BFGS-B", bounds=bounds)
    polish = minimize(loss, first.x, method="Nelder-Mead", bounds=bounds,
                      options={"xatol": 1e-9, "fatol": 1e-13, "maxiter": 400 * n})
    best = polish if polish.fun <= first.fun else first
    if not np.isfinite(best.fun):
        raise DataError(f"The {model} fit found no parameters that explain these customers.")
    edge = [name for name, v in zip(names, best.x) if abs(v) > LOG_BOUND - 0.5]
    if edge:
        raise DataError(f"The {model} fit did not settle: {', '.join(edge)} ran to the edge of "
                        "the search. Fit on more customers, or pass a small penalty (e.g. 0.001).")
    return best.x
