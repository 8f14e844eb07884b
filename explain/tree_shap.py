"""Exact TreeSHAP of the hybrid ranker's scores, named by the feature registry.

Why LightGBM's ``pred_contrib`` and not a sampling explainer: for tree ensembles it computes the
exact Shapley values (Lundberg et al., 2020) in milliseconds, so ``base + sum(contributions)``
equals the raw score the customer's list is sorted by, to float precision. Every surface that
shows a number ("affinity to the brand added 0.12") therefore shows a share of the real score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from errors import RecsightError
from explain.types import Contribution
from models.features import feature_spec
from models.ranker import Ranker

__all__ = ["ShapRows", "shap_rows", "contributions_of"]


ADDITIVITY_TOLERANCE = 1e-6


@dataclass(frozen=True)
class ShapRows:
    """TreeSHAP of some feature rows: ``values[i] @ 1 + base == scores[i]``."""

    features: list[str]  # the ranker's columns, in the order of ``values``' columns
    values: np.ndarray  # (rows, features) SHAP values in raw-score units
    inputs: np.ndarray  # (rows, features) the feature values (NaN where missing)
    base: float  # the ranker's expected raw score (the same for every row)
    scores: np.ndarray  # (rows,) the raw scores the SHAP values add up to

    @property
    def max_additivity_error(self) -> float:
        if not len(self.scores):
            return 0.0
        return float(np.max(np.abs(self.base + self.values.sum(axis=1) - self.scores)))


def shap_rows(ranker: Ranker, frame: pd.DataFrame) -> ShapRows:
    """Exact SHAP values of ``frame``'s rows; checks they add up to ``ranker.predict``.

    Raises ``RecsightError`` if they do not (a model file that does not match its feature list
    would be the cause): an explanation that does not add up must never be shown.
    """
    if frame.empty:
        empty = np.zeros((0, len(ranker.features)))
        return ShapRows(list(ranker.features), empty, empty, 0.0, np.zeros(0))
    # One thread: a list is ten rows, and two OpenMP threads stall when the cores are busy.
    matrix = ranker.matrix(frame)
    raw = ranker.booster.predict(matrix, pred_contrib=True, num_threads=1)
    values, base_column = raw[:, :-1], raw[:, -1]
    scores = ranker.booster.predict(matrix, raw_score=True, num_threads=1)
    rows = ShapRows(list(ranker.features), values, matrix, float(base_column[0]), scores)
    if np.ptp(base_column) > ADDITIVITY_TOLERANCE:
        raise RecsightError("the ranker's SHAP base value differs between rows; retrain the model")
    error = rows.max_additivity_error
    if error > ADDITIVITY_TOLERANCE:
        raise RecsightError(f"SHAP values miss the ranker's score by {error:.2e}; retrain the model")
    return rows


def contributions_of(rows: ShapRows, i: int) -> list[Contribution]:
    """Row ``i``'s contributions, largest |SHAP| first, labelled in the registry's plain words.

    Features with an exactly zero contribution (never split on for this row's path) are left
    out: they change neither the sum nor the story.
    """
    out = []
    for j, name in enumerate(rows.features):
        phi = float(rows.values[i, j])
        if phi == 0.0:
            continue
        spec = feature_spec(name)
        value = float(rows.inputs[i, j])
        out.append(Contribution(name, spec.plain, spec.group, None if math.isnan(value) else value, phi))
    out.sort(key=lambda c: (-abs(c.contribution), c.feature))
    return out
