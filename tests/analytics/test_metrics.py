"""Ranking metrics against values computed by hand."""

from __future__ import annotations

import math

import pytest

from analytics import metrics as m

RANKING = ["a", "b", "c", "d", "e"]


def test_single_target_leave_one_out_values() -> None:
    truth = {"c": 1.0}  # third place
    assert m.hit_rate_at_k(RANKING, truth, 3) == 1.0
    assert m.hit_rate_at_k(RANKING, truth, 2) == 0.0
    assert m.ndcg_at_k(RANKING, truth, 10) == pytest.approx(1 / math.log2(4))  # 0.5
    assert m.ndcg_at_k(RANKING, truth, 2) == 0.0
    assert m.reciprocal_rank(RANKING, truth) == pytest.approx(1 / 3)
    assert m.average_precision_at_k(RANKING, truth, 5) == pytest.approx(1 / 3)
    assert m.recall_at_k(RANKING, truth, 5) == 1.0
    assert m.precision_at_k(RANKING, truth, 5) == pytest.approx(0.2)


def test_several_targets_with_grades() -> None:
    truth = {"b": 1.0, "d": 1.0, "z": 1.0}  # z never recommended
    assert m.recall_at_k(RANKING, truth, 5) == pytest.approx(2 / 3)
    # AP@5: hits at ranks 2 and 4 -> (1/2 + 2/4) / min(3, 5)
    assert m.average_precision_at_k(RANKING, truth, 5) == pytest.approx((0.5 + 0.5) / 3)
    # DCG = 1/log2(3) + 1/log2(5); IDCG = 1 + 1/log2(3) + 1/log2(4)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 0.5
    assert m.ndcg_at_k(RANKING, truth, 5) == pytest.approx(dcg / idcg)
    graded = {"a": 1.0, "b": 4.0}
    # DCG = 1 + 4/log2(3); ideal order b, a: 4 + 1/log2(3)
    assert m.ndcg_at_k(RANKING, graded, 5) == pytest.approx((1 + 4 / math.log2(3)) / (4 + 1 / math.log2(3)))


def test_empty_inputs_are_misses_not_errors() -> None:
    assert m.ndcg_at_k([], {"a": 1.0}, 10) == 0.0
    assert m.reciprocal_rank([], {"a": 1.0}) == 0.0
    assert m.recall_at_k(RANKING, {}, 10) == 0.0
    assert m.coverage_at_k({}, 0, 10) == 0.0


def test_coverage_and_novelty() -> None:
    rankings = {"u1": ["a", "b"], "u2": ["b", "c"]}
    assert m.coverage_at_k(rankings, catalogue_size=10, k=2) == pytest.approx(0.3)
    assert m.coverage_at_k(rankings, catalogue_size=10, k=1) == pytest.approx(0.2)
    popularity = {"a": 3, "b": 1}  # c unseen
    expected = (-math.log2(4 / 4) - math.log2(2 / 4) - math.log2(2 / 4) - math.log2(1 / 4)) / 4
    assert m.novelty_at_k(rankings, popularity, n_users=3, k=2) == pytest.approx(expected)


def test_evaluate_rankings_averages_over_truth_users_and_counts_missing_lists_as_misses() -> None:
    truth = {"u1": {"a": 1.0}, "u2": {"x": 1.0}, "u3": {"b": 1.0}}
    rankings = {"u1": ["a", "b"], "u2": ["b", "a"]}  # u3 got nothing
    result = m.evaluate_rankings(rankings, truth, 1, catalogue_size=4, item_users={}, n_users=3)
    assert result["hr@1"] == pytest.approx(1 / 3)
    assert result["ndcg@1"] == pytest.approx(1 / 3)
    assert result["hr@2"] == pytest.approx(1 / 3)
    assert result["mrr"] == pytest.approx(1 / 3)
    assert result["users"] == 3
    assert set(m.metric_names(1)) <= set(result)
