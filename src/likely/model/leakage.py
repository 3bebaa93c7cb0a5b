"""Screens for features that know the future: one attribute that alone separates the classes.

A profile attribute that predicts the goal almost perfectly on its own is nearly always set by
the goal itself (a "last order date", a tier upgraded by the purchase being predicted) or stamped
after it; so is an attribute whose *missingness* does (a CRM row written after the customer
bought is missing at the training windows). Both are measured here as a single-feature AUC.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: Single-feature AUC (either direction) at or above which an attribute is left out.
LEAK_AUC = 0.95


def separation_auc(values: Any, labels: Any) -> float:
    """max(AUC, 1 − AUC) of the best single-feature ranking of ``values``, missingness included.

    Numbers rank by value with the missing ones first and then last (whichever separates
    better); anything else (text, categories, booleans) ranks by each value's positive rate,
    missing being a value of its own. 0.5 when one class is absent.
    """
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels, dtype=float).ravel()
    if y.size == 0 or y.min() == y.max():
        return 0.5
    series = pd.Series(values)
    missing = series.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        numbers = series.to_numpy(dtype=float, na_value=np.nan)
        rankings = [np.where(missing, edge, numbers) for edge in (-np.inf, np.inf)]
        rankings = [np.nan_to_num(r, neginf=np.nanmin(numbers, initial=0) - 1,
                                  posinf=np.nanmax(numbers, initial=0) + 1) for r in rankings]
    else:
        keys = series.astype(object).where(~missing, "\0missing").astype(str)
        rates = pd.Series(y).groupby(keys.to_numpy()).transform("mean").to_numpy()
        rankings = [rates]
    aucs = [float(roc_auc_score(y, r)) for r in rankings]
    return max(max(a, 1 - a) for a in aucs)
