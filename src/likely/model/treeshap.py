"""Exact path-dependent TreeSHAP of a LightGBM model, fast on many rows.

LightGBM's ``predict(X, pred_contrib=True)`` runs Lundberg's Algorithm 2 for every row and tree:
work grows with rows × trees × leaves × depth². This module gives the same numbers (within 1e-9,
in practice ~1e-14) with per-row work of a few table look-ups per tree.

Why a table suffices. For one leaf ``l`` of a tree, with the distinct features ``U`` split on along
its path, Algorithm 2's contribution of that leaf to feature ``i ∈ U`` is the Shapley value of the
product game ``g(S) = v_l · Π_{u∈S} o_u · Π_{u∉S} z_u``: ``z_u`` is the product of the cover ratios
(``count(child) / count(node)``) of the path's splits on ``u``, a constant of the model, and
``o_u ∈ {0, 1}`` says whether the row satisfies *all* the path's conditions on ``u``. A row enters
only through those bits. A *unit* is a subtree (its path from the root included): per feature, the
row's value falls into one of a few classes (codes with the same bits for every leaf of the unit),
so a unit's contribution vector is a table indexed by the classes' mixed-radix number, computed
once per model. Per row and unit: one look-up per feature to build the key, one per output feature
to add the contribution. Trees are cut into units so that no table exceeds ``TABLE_LIMIT``.

Decisions mirror LightGBM's C++ (``Tree::NumericalDecision``/``CategoricalDecision`` and the dense
predictor's input): values with ``|x| <= kZeroThreshold`` (1e-35f) are read as 0.0; a numerical
split sends NaN to ``default_left`` when its missing type is NaN and reads it as 0.0 otherwise,
and with missing type Zero sends 0.0 the default way; a categorical split truncates the value to
an int and sends it left iff that category is in the split's bitset (NaN, negatives and
categories beyond the bitset go right). Codes per feature are intervals between the model's
thresholds (with 0.0 alone when a split treats zero as missing, and NaN apart), or categories.

What is not covered goes to LightGBM itself, never to a guess. A tree with a zero data count or
a leaf whose path has more than ``MAX_PATH_FEATURES`` distinct features (deep trees) is explained
by ``pred_contrib`` on that tree alone (``start_iteration=t, num_iteration=1``; contributions add
over trees). A model with several trees per iteration (multiclass) or linear trees, an input other
than a DataFrame or a 2-D array, or anything unexpected while planning gives ``None``: the caller
uses ``pred_contrib``. Every batch is also checked against ``pred_contrib`` on a few rows (spread
over the batch, and rows where missing-value rules act); a difference above 1e-9 discards the fast
result and the plan. The tables cost memory: up to ``TABLE_BUDGET`` cells are kept per model, and
the tables of further trees are built batch by batch.
"""

from __future__ import annotations

import hashlib
import math
import threading
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from likely.engine import physical_cores

if TYPE_CHECKING:
    import lightgbm as lgb

#: LightGBM's ``kZeroThreshold`` (``1e-35f``, compared as a double).
K_ZERO = float(np.float32(1e-35))
#: Most entries (key values) in one unit's table (a unit of one leaf: 2**MAX_PATH_FEATURES).
TABLE_LIMIT = 1024
#: Most table cells (float64) kept for one model (64 MiB); the tables of further trees are built
#: batch by batch.
TABLE_BUDGET = 1 << 23
#: A leaf with more distinct features on its path sends its tree to LightGBM.
MAX_PATH_FEATURES = 12
#: A categorical feature with a category code above this sends the model to LightGBM.
MAX_CATEGORY = 1 << 20
#: Fewer rows than this: LightGBM's pred_contrib is about as fast as planning and checking.
MIN_ROWS = 10_000
#: Rows of every batch compared with pred_contrib, besides rows holding unusual values.
CHECK_ROWS = 32
TOLERANCE = 1e-9
#: Rows per thread below which threads are not worth starting.
_THREAD_ROWS = 20_000


class Unsupported(Exception):
    """Something the fast path does not cover; the caller uses LightGBM for it."""


@dataclass
class Result:
    """Contributions of one call and how they were computed."""

    values: np.ndarray  # (rows, features + 1), last column the base value
    fast_trees: int  # trees explained from tables
    lightgbm_trees: int  # trees explained by pred_contrib on the tree alone
    checked_rows: int
    max_check_diff: float


# -- the model text -----------------------------------------------------------------------------


@dataclass
class _Tree:
    index: int
    num_leaves: int
    split_feature: np.ndarray
    threshold: np.ndarray
    decision_type: np.ndarray
    left: np.ndarray
    right: np.ndarray
    leaf_value: np.ndarray
    leaf_count: np.ndarray
    internal_count: np.ndarray
    cat_boundaries: np.ndarray
    cat_threshold: np.ndarray
    is_linear: bool


def _parse_model(text: str) -> tuple[int, int, list[_Tree]]:
    """``(number of features, trees per iteration, trees)`` from ``model_to_string()``."""
    head, _, body = text.partition("\nTree=")
    header = dict(line.split("=", 1) for line in head.splitlines() if "=" in line)
    n_features = int(header["max_feature_idx"]) + 1
    per_iteration = int(header.get("num_tree_per_iteration", "1"))
    body = body.split("\nend of trees", 1)[0]
    trees = []
    for block in body.split("\nTree="):
        lines = block.strip().splitlines()
        if not lines:
            continue
        fields = dict(line.split("=", 1) for line in lines[1:] if "=" in line)
        index = int(lines[0])
        trees.append(_tree_from_fields(index, fields))
    return n_features, per_iteration, trees


def _tree_from_fields(index: int, f: dict[str, str]) -> _Tree:
    def ints(key: str, dtype: Any = np.int64) -> np.ndarray:
        return np.array(f.get(key, "").split(), dtype=dtype)

    def floats(key: str) -> np.ndarray:
        return np.array(f.get(key, "").split(), dtype=np.float64)

    num_leaves = int(f["num_leaves"])
    return _Tree(
        index=index,
        num_leaves=num_leaves,
        split_feature=ints("split_feature"),
        threshold=floats("threshold"),
        decision_type=ints("decision_type"),
        left=ints("left_child"),
        right=ints("right_child"),
        leaf_value=floats("leaf_value"),
        leaf_count=ints("leaf_count") if num_leaves > 1 else np.zeros(1, np.int64),
        internal_count=ints("internal_count"),
        cat_boundaries=ints("cat_boundaries"),
        cat_threshold=ints("cat_threshold", np.uint64),
        is_linear=f.get("is_linear", "0").strip() not in ("", "0"),
    )


# -- features: codes and the decisions of every split on them --------------------------------------


@dataclass
class _Feature:
    """How one feature's values become codes (small ints) that every split decides alike."""

    index: int
    categorical: bool
    cuts: np.ndarray = field(default_factory=lambda: np.zeros(0))  # numerical
    max_category: int = -1  # categorical

    @property
    def n_codes(self) -> int:
        # numerical: intervals 0..len(cuts) and NaN; categorical: 0..max, other, NaN
        return len(self.cuts) + 2 if not self.categorical else self.max_category + 3

    def representatives(self) -> np.ndarray:
        """A value of each code of a numerical feature: an interval's upper cut (+inf for the
        last), then NaN."""
        return np.concatenate([self.cuts, [np.inf, np.nan]])

    def codes(self, x: np.ndarray) -> np.ndarray:
        """Codes of a column (already read as LightGBM reads it: see ``_as_lightgbm_reads``)."""
        nan = np.isnan(x)
        if self.categorical:
            t = np.trunc(x)
            valid = (t >= 0) & (t <= self.max_category)
            out = np.where(valid, t, self.max_category + 1).astype(np.intp)
            if nan.any():
                out[nan] = self.max_category + 2
            return out
        out = np.searchsorted(self.cuts, x, side="left").astype(np.intp, copy=False)
        if nan.any():
            out[nan] = len(self.cuts) + 1
        return out


def _missing_type(decision_type: int) -> int:
    return (decision_type >> 2) & 3  # 0 None, 1 Zero, 2 NaN


def _numerical_left(values: np.ndarray, threshold: float, decision_type: int) -> np.ndarray:
    """``Tree::NumericalDecision`` on each value: True where it goes left."""
    missing = _missing_type(decision_type)
    default_left = bool(decision_type & 2)
    v = values.copy()
    nan = np.isnan(v)
    if missing != 2:
        v[nan] = 0.0
    with np.errstate(invalid="ignore"):
        left = v <= threshold
    if missing == 1:
        left[(v >= -K_ZERO) & (v <= K_ZERO)] = default_left
    elif missing == 2:
        left[nan] = default_left
    return left


def _categorical_left(feature: _Feature, tree: _Tree, node: int) -> np.ndarray:
    """``Tree::CategoricalDecision`` on each code: the category's bit in the split's bitset."""
    cat_idx = int(tree.threshold[node])
    words = tree.cat_threshold[tree.cat_boundaries[cat_idx]:tree.cat_boundaries[cat_idx + 1]]
    left = np.zeros(feature.n_codes, dtype=bool)
    cats = _bitset_members(words)
    left[cats[cats <= feature.max_category]] = True
    return left  # 'other' and NaN go right


def _bitset_members(words: np.ndarray) -> np.ndarray:
    bits = (words[:, None] >> np.arange(32, dtype=np.uint64)[None, :]) & np.uint64(1)
    return np.flatnonzero(bits.ravel())


def _features(trees: list[_Tree], n_features: int) -> dict[int, _Feature]:
    """The code system of every feature split on in ``trees``."""
    numerical: dict[int, set[float]] = {}
    zero_missing: set[int] = set()
    categorical: dict[int, int] = {}
    for tree in trees:
        for node in range(tree.num_leaves - 1):
            f = int(tree.split_feature[node])
            if not 0 <= f < n_features:
                raise Unsupported(f"split on feature {f} of {n_features}")
            if tree.decision_type[node] & 1:
                cat_idx = int(tree.threshold[node])
                words = tree.cat_threshold[
                    tree.cat_boundaries[cat_idx]:tree.cat_boundaries[cat_idx + 1]]
                members = _bitset_members(words)
                top = int(members.max()) if members.size else 0
                categorical[f] = max(categorical.get(f, 0), top)
            else:
                numerical.setdefault(f, set()).add(float(tree.threshold[node]))
                if _missing_type(int(tree.decision_type[node])) == 1:
                    zero_missing.add(f)
    both = set(numerical) & set(categorical)
    if both:
        raise Unsupported(f"features {sorted(both)} have numerical and categorical splits")
    out = {}
    for f, top in categorical.items():
        if top > MAX_CATEGORY:
            raise Unsupported(f"category {top} of feature {f}")
        out[f] = _Feature(f, True, max_category=top)
    for f, thresholds in numerical.items():
        cuts = set(thresholds)
        if any(math.isnan(t) for t in cuts):
            raise Unsupported(f"a NaN threshold on feature {f}")
        if f in zero_missing:
            # 0.0 alone: inputs in [-K_ZERO, K_ZERO] are read as 0.0, so (below -K_ZERO, 0] holds
            # only zeros; every interval's representative (its upper cut) then decides as the
            # values it holds (an interval that can hold none of them does no harm)
            cuts |= {0.0, float(np.nextafter(-K_ZERO, -1.0))}
        out[f] = _Feature(f, False, cuts=np.array(sorted(cuts), dtype=np.float64))
    return out


# -- leaves, units and their tables ---------------------------------------------------------------


@dataclass
class _Leaf:
    value: float
    features: list[int]  # distinct features on the path, first seen first
    zero: np.ndarray  # (d,) product of cover ratios per feature
    satisfied: list[np.ndarray]  # per feature: bool over codes, all the path's conditions hold


@dataclass
class _Unit:
    """A subtree's leaves; its contribution is ``table[:, key]`` with
    ``key = Σ lut[f][code of f]``."""

    features: list[int]
    luts: list[np.ndarray]  # intp over codes: class × stride
    columns: np.ndarray  # output feature of each table row
    table: np.ndarray  # (len(columns), key values)


def _tree_leaves(tree: _Tree, features: dict[int, _Feature]) -> tuple[list[_Leaf], list]:
    """Every leaf with its path data, and the subtree structure ``(node, left, right)`` /
    ``('leaf', i)`` for cutting units."""
    counts_internal = tree.internal_count.astype(np.float64)
    counts_leaf = tree.leaf_count.astype(np.float64)
    if (counts_internal <= 0).any() or (counts_leaf <= 0).any():
        raise Unsupported("a node without data")
    goes_left: dict[int, np.ndarray] = {}
    for node in range(tree.num_leaves - 1):
        feature = features[int(tree.split_feature[node])]
        dt = int(tree.decision_type[node])
        if dt & 1:
            goes_left[node] = _categorical_left(feature, tree, node)
        else:
            goes_left[node] = _numerical_left(feature.representatives(),
                                              float(tree.threshold[node]), dt)
    leaves: list[_Leaf | None] = [None] * tree.num_leaves

    def count(child: int) -> float:
        return counts_internal[child] if child >= 0 else counts_leaf[~child]

    def walk(node: int, path: list[tuple[int, bool]]):
        if node < 0:
            leaves[~node] = _make_leaf(tree, ~node, path, goes_left, features, count)
            return ("leaf", ~node)
        left = walk(int(tree.left[node]), [*path, (node, True)])
        right = walk(int(tree.right[node]), [*path, (node, False)])
        return (node, left, right)

    shape = walk(0, [])
    return leaves, shape  # type: ignore[return-value]


def _make_leaf(tree, leaf, path, goes_left, features, count) -> _Leaf:
    order: list[int] = []
    zero: dict[int, float] = {}
    sat: dict[int, np.ndarray] = {}
    for node, went_left in path:
        f = int(tree.split_feature[node])
        child = int(tree.left[node] if went_left else tree.right[node])
        ratio = count(child) / count(node)
        side = goes_left[node] if went_left else ~goes_left[node]
        if f in zero:
            zero[f] = ratio * zero[f]  # as Algorithm 2: hot/cold fraction × incoming fraction
            sat[f] = sat[f] & side
        else:
            order.append(f)
            zero[f] = ratio
            sat[f] = side.copy()
    if len(order) > MAX_PATH_FEATURES:
        raise Unsupported(f"a leaf with {len(order)} features on its path")
    return _Leaf(float(tree.leaf_value[leaf]), order,
                 np.array([zero[f] for f in order]), [sat[f] for f in order])


def _classes(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Group codes by their column of ``rows`` (bool over codes, one per leaf):
    ``(class of each code, bool (leaves, classes))``."""
    matrix = np.array(rows, dtype=bool)
    if matrix.shape[0] <= 62:
        ids = (matrix.astype(np.int64) << np.arange(matrix.shape[0], dtype=np.int64)[:, None])
        _, first, inverse = np.unique(ids.sum(axis=0), return_index=True, return_inverse=True)
    else:
        _, first, inverse = np.unique(matrix.T, axis=0, return_index=True, return_inverse=True)
    return inverse.ravel().astype(np.intp), matrix[:, first]


@dataclass
class _UnitPlan:
    leaves: list[int]
    features: list[int]
    code_class: list[np.ndarray]
    class_sat: list[np.ndarray]  # per feature: (leaves having it, classes)
    rows: list[dict[int, int]]  # per feature: leaf -> row in class_sat
    size: int


def _plan_unit(leaves: list[_Leaf], ids: list[int]) -> _UnitPlan:
    feats: list[int] = []
    for i in ids:
        feats.extend(f for f in leaves[i].features if f not in feats)
    code_class, class_sat, rows = [], [], []
    size = 1
    for f in feats:
        having = [i for i in ids if f in leaves[i].features]
        sats = [leaves[i].satisfied[leaves[i].features.index(f)] for i in having]
        inverse, sat = _classes(sats)
        code_class.append(inverse)
        class_sat.append(sat)
        rows.append({leaf: r for r, leaf in enumerate(having)})
        size *= sat.shape[1]
    return _UnitPlan(ids, feats, code_class, class_sat, rows, size)


def _cut_units(shape, leaves: list[_Leaf]) -> list[_UnitPlan]:
    def leaf_ids(s) -> list[int]:
        return [s[1]] if s[0] == "leaf" else leaf_ids(s[1]) + leaf_ids(s[2])

    plan = _plan_unit(leaves, leaf_ids(shape))
    if plan.size <= TABLE_LIMIT or (shape[0] == "leaf" and plan.size <= 1 << MAX_PATH_FEATURES):
        return [plan]
    if shape[0] == "leaf":
        raise Unsupported(f"a leaf with {plan.size} key values")
    return _cut_units(shape[1], leaves) + _cut_units(shape[2], leaves)


def _shapley_tables(zero: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Leaf contributions for every one-fraction mask: ``(leaves, 2**d, d)``.

    ``zero`` is ``(leaves, d)``, ``value`` ``(leaves,)``; entry ``[l, m, i]`` is the Shapley value
    of feature ``i`` in ``v · Π_{u∈S} o_u · Π_{u∉S} z_u`` where ``o_u`` is bit ``u`` of ``m``:
    ``v (o_i - z_i) Σ_s s!(d-1-s)!/d! · e_s``, ``e_s`` the coefficient of ``t^s`` in
    ``Π_{u≠i} (z_u + o_u t)``.
    """
    n, d = zero.shape
    masks = np.arange(1 << d)
    one = ((masks[None, :] >> np.arange(d)[:, None]) & 1).astype(np.float64)  # (d, M)
    weight = [math.factorial(s) * math.factorial(d - 1 - s) / math.factorial(d)
              for s in range(d)]
    out = np.empty((n, 1 << d, d))
    for i in range(d):
        coef = [np.ones((n, 1 << d))]
        for u in range(d):
            if u == i:
                continue
            zu, ou = zero[:, u:u + 1], one[u][None, :]
            new = [coef[0] * zu]
            new.extend(coef[s] * zu + coef[s - 1] * ou for s in range(1, len(coef)))
            new.append(coef[-1] * ou)
            coef = new
        total = weight[0] * coef[0]
        for s in range(1, d):
            total = total + weight[s] * coef[s]
        out[:, :, i] = value[:, None] * (one[i][None, :] - zero[:, i:i + 1]) * total
    return out


def _unit_table(plan: _UnitPlan, leaves: list[_Leaf], shap: dict[int, np.ndarray]) -> _Unit:
    sizes = [sat.shape[1] for sat in plan.class_sat]
    strides = np.cumprod([1, *sizes[:-1]]).astype(np.intp)
    keys = np.arange(plan.size, dtype=np.intp)
    key_class = [(keys // s) % n for s, n in zip(strides, sizes)]
    column = {f: j for j, f in enumerate(plan.features)}
    table = np.zeros((len(plan.features), plan.size))
    for leaf_id in plan.leaves:
        leaf = leaves[leaf_id]
        mask = np.zeros(plan.size, dtype=np.intp)
        for bit, f in enumerate(leaf.features):
            j = column[f]
            one = plan.class_sat[j][plan.rows[j][leaf_id]][key_class[j]]
            mask |= one.astype(np.intp) << bit
        phi = shap[leaf_id]  # (2**d, d)
        for bit, f in enumerate(leaf.features):
            table[column[f]] += phi[mask, bit]
    luts = [(cls * s).astype(np.intp) for cls, s in zip(plan.code_class, strides)]
    return _Unit(plan.features, luts, np.array(plan.features, dtype=np.intp), table)


# -- the plan of a model ------------------------------------------------------------------------


@dataclass
class Plan:
    """Everything the fast path needs about one model, built once.

    ``units`` hold the tables of the first trees, up to ``TABLE_BUDGET`` cells; the tables of the
    trees in ``transient`` (groups of a few) are built again for every batch and dropped, which
    costs a few milliseconds per tree against LightGBM's hundreds per 100k rows, and keeps memory
    bounded whatever the model's size.
    """

    n_features: int
    features: dict[int, _Feature]
    units: list[_Unit]
    transient: list[list[_Tree]]
    lightgbm_runs: list[tuple[int, int]]  # (first tree, number of trees) explained by LightGBM
    resident_trees: int
    broken: bool = False

    @property
    def fast_trees(self) -> int:
        return self.resident_trees + sum(len(group) for group in self.transient)

    @property
    def lightgbm_trees(self) -> int:
        return sum(n for _, n in self.lightgbm_runs)

    @property
    def table_cells(self) -> int:
        return sum(u.table.size for u in self.units)


def build_plan(model_text: str) -> Plan:
    """Parse a model and tabulate every tree it can; raises ``Unsupported`` for the model."""
    n_features, per_iteration, trees = _parse_model(model_text)
    if per_iteration != 1:
        raise Unsupported(f"{per_iteration} trees per iteration (multiclass)")
    if any(t.is_linear for t in trees):
        raise Unsupported("linear trees (pred_contrib refuses them too)")
    features = _features(trees, n_features)
    resident: list[tuple[_Tree, list[_Leaf], list[_UnitPlan]]] = []
    transient: list[list[_Tree]] = [[]]
    slow: list[int] = []
    cells = group_cells = 0
    for tree in trees:
        if tree.num_leaves <= 1:
            continue  # a constant tree only adds to the base value
        try:
            leaves, shape = _tree_leaves(tree, features)
            units = _cut_units(shape, leaves)
        except Unsupported:
            slow.append(tree.index)
            continue
        size = sum(u.size * len(u.features) for u in units)
        if cells + size <= TABLE_BUDGET:
            cells += size
            resident.append((tree, leaves, units))
            continue
        if transient[-1] and group_cells + size > TABLE_BUDGET // 8:
            transient.append([])
            group_cells = 0
        transient[-1].append(tree)
        group_cells += size
    units = _tables(resident)
    transient = [group for group in transient if group]
    used = {f for u in units for f in u.features}
    used |= {int(f) for group in transient for t in group for f in t.split_feature}
    return Plan(n_features, {f: features[f] for f in sorted(used)}, units, transient,
                _runs(slow), len(resident))


def _tables(planned: list[tuple[_Tree, list[_Leaf], list[_UnitPlan]]]) -> list[_Unit]:
    shap = _all_leaf_tables(planned)
    return [_unit_table(u, leaves, shap[tree.index])
            for tree, leaves, tree_units in planned for u in tree_units]


def _transient_units(trees: list[_Tree], features: dict[int, _Feature]) -> list[_Unit]:
    planned = []
    for tree in trees:
        leaves, shape = _tree_leaves(tree, features)
        planned.append((tree, leaves, _cut_units(shape, leaves)))
    return _tables(planned)


def _all_leaf_tables(planned) -> dict[int, dict[int, np.ndarray]]:
    """Shapley tables of every leaf, computed together for leaves with as many path features."""
    by_depth: dict[int, list[tuple[int, int, _Leaf]]] = {}
    for tree, leaves, _ in planned:
        for i, leaf in enumerate(leaves):
            by_depth.setdefault(len(leaf.features), []).append((tree.index, i, leaf))
    out: dict[int, dict[int, np.ndarray]] = {tree.index: {} for tree, _, _ in planned}
    for d, items in by_depth.items():
        chunk = max(1, (1 << 18) >> d)
        for start in range(0, len(items), chunk):
            part = items[start:start + chunk]
            tables = _shapley_tables(np.array([leaf.zero for _, _, leaf in part]),
                                     np.array([leaf.value for _, _, leaf in part]))
            for (t, i, _), table in zip(part, tables):
                out[t][i] = table
    return out


def _runs(indices: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for i in sorted(indices):
        if runs and runs[-1][0] + runs[-1][1] == i:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((i, 1))
    return runs


_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_PLANS_LOCK = threading.Lock()


def plan_for(booster: lgb.Booster, *, build: bool = True) -> Plan | None:
    """The booster's plan, cached while the booster lives and its model text is unchanged.

    ``None`` when the model is not supported (or not planned yet and ``build`` is False).
    """
    text = booster.model_to_string()
    digest = hashlib.blake2b(text.encode(), digest_size=16).digest()
    with _PLANS_LOCK:
        cached = _PLANS.get(booster)
    if cached is not None and cached[0] == digest:
        return cached[1]
    if not build:
        return None
    plan: Plan | None = None
    try:
        plan = build_plan(text)
    except Unsupported:
        pass
    except Exception as exc:  # a model text this module does not know: LightGBM explains it
        warnings.warn(f"Fast TreeSHAP cannot plan this model ({exc!r}); using pred_contrib.",
                      RuntimeWarning, stacklevel=3)
    with _PLANS_LOCK:
        _PLANS[booster] = (digest, plan)
    return plan


# -- explaining a batch ---------------------------------------------------------------------------


def _as_lightgbm_reads(booster: lgb.Booster, X: Any) -> np.ndarray:
    """The float matrix LightGBM's predictor reads for ``X``; raises ``Unsupported`` for inputs
    other than a pandas DataFrame or a 2-D numpy array."""
    import pandas as pd

    if isinstance(X, pd.DataFrame):
        from lightgbm.basic import _data_from_pandas

        matrix = _data_from_pandas(X, "auto", "auto", booster.pandas_categorical)[0]
    elif isinstance(X, np.ndarray) and X.ndim == 2:
        matrix = X if X.dtype in (np.float32, np.float64) else X.astype(np.float32)
    else:
        raise Unsupported(f"input of type {type(X).__name__}")
    return np.asarray(matrix, dtype=np.float64)


def _as_read(x: np.ndarray) -> np.ndarray:
    """A column as the dense predictor passes it to a tree: |x| <= kZeroThreshold is 0.0."""
    with np.errstate(invalid="ignore"):
        small = np.abs(x) <= K_ZERO
    return np.where(small, 0.0, x) if small.any() else x


def contributions(
    booster: lgb.Booster, X: Any, *, num_threads: int = 0, min_rows: int = MIN_ROWS,
) -> Result | None:
    """Exact TreeSHAP ``(rows, features + 1)`` as ``pred_contrib`` gives it, or ``None`` when
    the fast path does not apply (then call ``pred_contrib``)."""
    rows = int(X.shape[0]) if hasattr(X, "shape") and len(X.shape) == 2 else 0
    if rows == 0 or rows < min_rows:
        return None
    plan = plan_for(booster)
    if plan is None or plan.broken or not plan.fast_trees:
        return None
    try:
        matrix = _as_lightgbm_reads(booster, X)
    except Exception:  # an input LightGBM reads its own way, or refuses with its own error
        return None
    if matrix.shape[1] != plan.n_features:
        return None  # LightGBM raises its own error
    try:
        out, codes = _explain(plan, booster, matrix, num_threads)
    except Exception as exc:
        plan.broken = True
        warnings.warn(f"Fast TreeSHAP failed ({exc!r}); using pred_contrib for this model.",
                      RuntimeWarning, stacklevel=2)
        return None
    check = _check_rows(plan, codes, matrix.shape[0])
    reference = np.asarray(booster.predict(matrix[check], pred_contrib=True,
                                           num_threads=num_threads), dtype=np.float64)
    out[:, -1] = reference[0, -1]  # the base value: a constant, LightGBM's own sum
    diff = float(np.max(np.abs(out[check] - reference)))
    # 1e-9 for log-odds; a model whose outputs are large (a regression on amounts) rounds larger
    if not diff <= TOLERANCE * max(1.0, float(np.max(np.abs(reference)))):
        plan.broken = True
        warnings.warn(f"Fast TreeSHAP differs from LightGBM by {diff:.3g}; using pred_contrib "
                      "for this model.", RuntimeWarning, stacklevel=2)
        return None
    return Result(out, plan.fast_trees, plan.lightgbm_trees, len(check), diff)


def _explain(plan: Plan, booster: lgb.Booster, matrix: np.ndarray,
             num_threads: int) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    n, F = matrix.shape
    used = list(plan.features)
    columns = matrix.T[used]  # (features used, rows), each row contiguous
    codes = {f: plan.features[f].codes(_as_read(x)) for f, x in zip(used, columns)}
    del columns
    out_t = np.zeros((F + 1, n))
    threads = max(1, min(num_threads or physical_cores(), n // _THREAD_ROWS))
    bounds = np.linspace(0, n, threads + 1).astype(int)
    with ThreadPoolExecutor(threads) as pool:
        for units in _unit_batches(plan):
            list(pool.map(lambda i, units=units: _accumulate(units, codes, out_t, bounds[i],
                                                             bounds[i + 1]), range(threads)))
    for start, count in plan.lightgbm_runs:
        part = booster.predict(matrix, pred_contrib=True, start_iteration=start,
                               num_iteration=count, num_threads=num_threads)
        out_t[:F] += np.asarray(part, dtype=np.float64)[:, :F].T
    return np.ascontiguousarray(out_t.T), codes


def _unit_batches(plan: Plan):
    """The resident units, then each transient group's units (built now, dropped after)."""
    if plan.units:
        yield plan.units
    for group in plan.transient:
        yield _transient_units(group, plan.features)


def _accumulate(units: list[_Unit], codes: dict[int, np.ndarray], out_t: np.ndarray,
                lo: int, hi: int) -> None:
    """Add every unit's contribution for rows ``lo:hi`` into ``out_t`` (features × rows)."""
    n = hi - lo
    if n <= 0:
        return
    key = np.empty(n, dtype=np.intp)
    part = np.empty(n, dtype=np.intp)
    gathered = np.empty(n)
    block = {f: c[lo:hi] for f, c in codes.items()}
    for unit in units:
        np.take(unit.luts[0], block[unit.features[0]], out=key, mode="clip")
        for lut, f in zip(unit.luts[1:], unit.features[1:]):
            np.take(lut, block[f], out=part, mode="clip")
            np.add(key, part, out=key)
        for column, row in zip(unit.columns, unit.table):
            np.take(row, key, out=gathered, mode="clip")
            target = out_t[column, lo:hi]
            np.add(target, gathered, out=target)


def _check_rows(plan: Plan, codes: dict[int, np.ndarray], n: int) -> np.ndarray:
    """Rows compared with pred_contrib: evenly spaced ones, and per feature the first row in each
    code where missing-value rules act: NaN, 0.0 and the intervals either side of it, a category
    beyond the model's, category 0, the lowest and highest interval."""
    picks = set(np.linspace(0, n - 1, min(CHECK_ROWS, n)).astype(int).tolist())
    for f, feature in plan.features.items():
        last = feature.n_codes - 1  # NaN
        special = {0, last, last - 1}
        if not feature.categorical:
            zero = int(np.searchsorted(feature.cuts, 0.0))
            special |= {zero - 1, zero, zero + 1}
        column = codes[f]
        for code in special:
            hits = column == code
            first = int(np.argmax(hits))
            if hits[first]:
                picks.add(first)
    return np.array(sorted(picks), dtype=np.intp)
