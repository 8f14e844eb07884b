"""Faithfulness of the numbers: SHAP adds up to the score, IG adds up to the network's score gap,
the attention feature's SHAP is split over the events, and the attributions point at the events
that matter (deletion test)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explain.attributions import attribute_items, deletion_drops, scores_without, split_attention_shap
from explain.tree_shap import ADDITIVITY_TOLERANCE, contributions_of, shap_rows
from models.features import ATTENTION_SCORE, feature_spec
from models.sequences import PAD
from models.serving import Recommender
from tests.explain.conftest import COLD_USER


def test_shap_adds_up_to_every_listed_score_and_uses_registry_labels(recommender: Recommender, explained,
                                                                      active_users: list[str]) -> None:
    for user in active_users[:8] + [COLD_USER]:
        result, items = explained(user)
        assert result.items
        for explanation, _ in items:
            total = explanation.base_value + sum(c.contribution for c in explanation.contributions)
            assert abs(total - explanation.score) < ADDITIVITY_TOLERANCE
            sizes = [abs(c.contribution) for c in explanation.contributions]
            assert sizes == sorted(sizes, reverse=True)
            for c in explanation.contributions:
                spec = feature_spec(c.feature)
                assert (c.label, c.group) == (spec.plain, spec.group)  # the words an agent reads out
        # the feature values shown are the ranker's inputs for that row
        rows = shap_rows(recommender.ranker, result.features)
        shown = {c.feature: c.value for c in contributions_of(rows, 0)}
        for name, value in shown.items():
            raw = result.features.loc[0, name]
            assert (value is None and np.isnan(raw)) or value == pytest.approx(raw)


def test_integrated_gradients_complete_within_one_percent(recommender: Recommender, explained,
                                                          active_users: list[str]) -> None:
    relative = []
    for user in active_users[:10]:
        result = explained(user).result
        histories = recommender.histories([user])
        pairs = attribute_items(recommender.attention, histories, user, [i.item_id for i in result.items])
        features = result.features[ATTENTION_SCORE].to_numpy()
        for pair, feature in zip(pairs, features):
            # the network IG explains is the one the ranker read
            assert pair.score == pytest.approx(feature, abs=1e-4)
            assert pair.attributions.sum() - (pair.score - pair.baseline_score) == pytest.approx(pair.delta, abs=1e-5)
            assert len(pair.attributions) == len(pair.attention) > 0
            assert np.all((pair.attention > 0) & (pair.attention < 1))  # DIN pooling weights, not shares
            relative.append(pair.relative_delta)
    assert np.median(relative) < 0.01
    assert max(relative) < 0.01


def test_attention_shap_is_split_over_the_history_events(recommender: Recommender, explained,
                                                         active_users: list[str]) -> None:
    result, items = explained(active_users[0])
    column = recommender.ranker.features.index(ATTENTION_SCORE)
    rows = shap_rows(recommender.ranker, result.features)
    for i, (explanation, _) in enumerate(items):
        phi = rows.values[i, column]
        assert sum(h.score_share for h in explanation.history) == pytest.approx(phi, abs=1e-9)
        assert explanation.attention_share == pytest.approx(abs(phi) / np.abs(rows.values[i]).sum())
        attributions = [abs(h.attribution) for h in explanation.history]
        assert attributions == sorted(attributions, reverse=True)


def test_split_keeps_signs_and_stays_bounded_when_events_cancel() -> None:
    shares = split_attention_shap(0.3, np.array([2.0, 1.0, -1.0]))
    np.testing.assert_allclose(shares, [0.3, 0.15, -0.15])
    cancelling = split_attention_shap(0.3, np.array([1.0, -0.99]))
    assert cancelling.sum() == pytest.approx(0.3) and np.all(np.abs(cancelling) <= 0.3)
    assert not split_attention_shap(0.0, np.array([1.0, 2.0])).any()


def test_removing_top_attributed_events_lowers_the_score_more_than_random_ones(
        recommender: Recommender, explained, active_users: list[str]) -> None:
    rng = np.random.default_rng(0)
    drops = []
    for user in active_users[:16]:
        result = explained(user).result
        histories = recommender.histories([user])
        for pair in attribute_items(recommender.attention, histories, user, [i.item_id for i in result.items]):
            drop = deletion_drops(recommender.attention, histories, user, pair, rng)
            if drop is not None:
                drops.append(drop)
    drops = np.array(drops)  # columns: top-3, random 3
    assert len(drops) >= 100
    assert np.mean(drops[:, 0] > drops[:, 1]) > 0.9
    assert drops[:, 0].mean() > 2 * drops[:, 1].mean()


def test_removing_an_event_is_presence_zero(recommender: Recommender, active_users: list[str]) -> None:
    """What IG integrates over (presence) is what removal does: the deletion test tests IG itself."""
    user = active_users[0]
    histories = recommender.histories([user])
    model = recommender.attention
    inputs = model.inputs(histories, [user] * 2, ["anything", "anything"])
    real = np.flatnonzero((inputs.hist_items[0] != PAD).numpy())
    cut = [real[[0, 3, -1]], real[[1, 2]]]
    removed = scores_without(model, histories, user, "anything", cut)
    presence = (inputs.hist_items != PAD).float()
    for i, columns in enumerate(cut):
        presence[i, columns] = 0.0
    net = model.network
    with model.scoring_runtime(), torch.no_grad():
        faded = net.forward_presence(net.embed_history(*inputs[:4]), presence, inputs.target_items).numpy()
    np.testing.assert_allclose(faded, removed, rtol=1e-5, atol=1e-6)
