"""explain.tree_shap on a small ranker trained here: the SHAP values of every row add up to the
score the list is sorted by, contributions come labelled and largest first, and a model whose
values do not add up is refused (an explanation that does not add up is never shown)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from errors import RecsightError
from explain.tree_shap import ADDITIVITY_TOLERANCE, contributions_of, shap_rows
from models.features import ATTENTION_SCORE, feature_spec
from models.ranker import Ranker, RankerConfig, train_ranker

# Real registry columns: the signal, a feature that is often missing, and one that never varies.
SIGNAL, SPARSE, CONSTANT = "brand_share", "price_ratio", "user_events"
FEATURES = [SIGNAL, SPARSE, ATTENTION_SCORE, CONSTANT]
CONFIG = RankerConfig(num_leaves=7, min_data_in_leaf=5, max_rounds=40, early_stopping=10, valid_fraction=0.25,
                      threads=1)


def _frame(seed: int, users: int = 60, per_user: int = 10) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        signal = rng.normal(size=per_user)
        labels = np.zeros(per_user)
        labels[np.argsort(-signal - rng.normal(scale=0.3, size=per_user))[:2]] = [4, 1]
        for j in range(per_user):
            rows.append({"user_id": f"u{u:03d}", "item_id": f"i{j}", "cand_rank": j + 1, SIGNAL: signal[j],
                         SPARSE: np.nan if rng.random() < 0.4 else rng.normal() + 0.5 * signal[j],
                         ATTENTION_SCORE: rng.normal() + signal[j], CONSTANT: 3.0, "label": labels[j]})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def ranker() -> Ranker:
    return train_ranker(_frame(seed=0), FEATURES, CONFIG)


@pytest.fixture(scope="module")
def rows(ranker: Ranker):
    return shap_rows(ranker, _frame(seed=1, users=5))


def test_every_row_adds_up_to_the_score_the_list_is_sorted_by(ranker: Ranker, rows) -> None:
    frame = _frame(seed=1, users=5)
    assert rows.values.shape == (len(frame), len(FEATURES)) and rows.features == FEATURES
    np.testing.assert_allclose(rows.scores, ranker.predict(frame), rtol=0, atol=1e-12)
    per_row = rows.base + rows.values.sum(axis=1)
    np.testing.assert_allclose(per_row, rows.scores, rtol=0, atol=ADDITIVITY_TOLERANCE)
    assert rows.max_additivity_error <= ADDITIVITY_TOLERANCE
    # the same numbers as the booster's own TreeSHAP (what Ranker.contributions returns)
    np.testing.assert_allclose(rows.values, ranker.contributions(frame)[:, :-1], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(np.isnan(rows.inputs[:, 1]), frame[SPARSE].isna().to_numpy())


def test_contributions_are_labelled_largest_first_without_zeros(rows) -> None:
    for i in range(len(rows.scores)):
        found = contributions_of(rows, i)
        sizes = [abs(c.contribution) for c in found]
        assert sizes == sorted(sizes, reverse=True) and all(sizes)
        names = [c.feature for c in found]
        assert CONSTANT not in names  # never split on: exactly zero, left out
        assert SIGNAL in names
        for c in found:
            spec = feature_spec(c.feature)
            assert (c.label, c.group) == (spec.plain, spec.group)
            j = FEATURES.index(c.feature)
            assert c.contribution == rows.values[i, j]
            assert c.value is None if math.isnan(rows.inputs[i, j]) else c.value == rows.inputs[i, j]
        # what the reasons and figures sum: the shown contributions still add up to the score
        assert rows.base + sum(c.contribution for c in found) == pytest.approx(rows.scores[i], abs=1e-9)
    missing = [i for i in range(len(rows.scores)) if math.isnan(rows.inputs[i, 1])]
    assert missing, "the fixture has rows without a price ratio"
    for i in missing:
        assert all(c.value is None for c in contributions_of(rows, i) if c.feature == SPARSE)


def test_no_rows_no_values(ranker: Ranker) -> None:
    empty = shap_rows(ranker, _frame(seed=1, users=1).iloc[0:0])
    assert empty.values.shape == (0, len(FEATURES)) and empty.max_additivity_error == 0.0


def test_a_missing_feature_column_is_one_clear_error(ranker: Ranker) -> None:
    with pytest.raises(RecsightError, match=SPARSE):
        shap_rows(ranker, _frame(seed=1, users=1).drop(columns=[SPARSE]))


class _Drifting:
    """A booster whose scores are not what its SHAP values add up to (a model file that does
    not match its features would do this)."""

    def __init__(self, booster, shift: float) -> None:
        self.booster, self.shift = booster, shift

    def predict(self, matrix, **kwargs):
        out = self.booster.predict(matrix, **kwargs)
        return out if kwargs.get("pred_contrib") else out + self.shift

    def feature_name(self):
        return self.booster.feature_name()


def test_values_that_do_not_add_up_are_refused(ranker: Ranker) -> None:
    frame = _frame(seed=1, users=2)
    close = Ranker(_Drifting(ranker.booster, ADDITIVITY_TOLERANCE / 10), FEATURES)
    assert shap_rows(close, frame).max_additivity_error < ADDITIVITY_TOLERANCE
    off = Ranker(_Drifting(ranker.booster, 1e-3), FEATURES)
    with pytest.raises(RecsightError, match="SHAP values miss the ranker's score") as caught:
        shap_rows(off, frame)
    assert "\n" not in str(caught.value)
