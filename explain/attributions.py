"""Integrated Gradients on the attention network: how much each past event drove its score.

Item ids cannot be differentiated, so the attribution runs on the behaviour embeddings (one
d-dimensional vector per history position, ``network.embed_history``) together with each event's
presence (1 = it happened), through ``network.forward_presence``. The path starts at the empty
history (zero embeddings and presence: the cold-start score) and fades every event in; an event's
attribution is its embedding's part summed over dimensions plus its presence's part, so it counts
what the event was and that it happened (the history length included): what goes when the event
is removed, which the deletion test checks. Completeness ``sum(attributions) == score -
baseline_score`` (baseline = cold start) holds up to the integral's numerical error, reported per
pair as the convergence delta.

Captum's Gauss-Legendre rule converges fast on this small network; steps double for the pairs
still above ``tolerance`` (relative to the score difference) until ``max_steps``.

The ranker sees the network only through its ``attention_score`` feature, so the SHAP value of
that feature is what the events explain in the final score: :func:`split_attention_shap`
spreads it over the events in proportion to their attributions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
import torch
from captum.attr import IntegratedGradients

from explain.types import HistoryEvidence
from models.attention import AttentionModel, PairInputs
from models.sequences import PAD, Histories

__all__ = ["MIN_DELETION_WINDOW", "PairAttribution", "attribute_items", "deletion_drops", "history_evidence",
           "scores_without", "split_attention_shap"]

log = logging.getLogger(__name__)

DEFAULT_STEPS = 16
MAX_STEPS = 256
TOLERANCE = 0.01  # |convergence delta| / |score - baseline score|
GAP_FLOOR = 1e-3  # below this score gap, float32 noise would make any relative tolerance unreachable
DELETED_EVENTS = 3  # events the deletion test removes: the most attributed ones, or random ones
MIN_DELETION_WINDOW = 2 * DELETED_EVENTS  # fewer events and the two sets would mostly be the same


@dataclass(frozen=True)
class PairAttribution:
    """Integrated Gradients of one (customer, item) pair over the customer's history window."""

    item_id: str
    score: float  # the network's logit: the ranker's ``attention_score`` feature
    baseline_score: float  # the logit with no history at all (IG's baseline, the cold-start score)
    columns: np.ndarray  # window columns of the real events (oldest first)
    attributions: np.ndarray  # per event: its embedding's attribution summed over dimensions, plus its presence's
    attention: np.ndarray  # the activation unit's pooling weight (0..1) per event
    delta: float  # sum(attributions) - (score - baseline_score)
    steps: int

    @property
    def relative_delta(self) -> float:
        """|delta| over the score difference it should add up to (0 when both are 0)."""
        gap = abs(self.score - self.baseline_score)
        return abs(self.delta) / gap if gap > 0 else (0.0 if self.delta == 0 else float("inf"))


def _window(model: AttentionModel, histories: Histories, user_id: str,
            item_ids: Sequence[str]) -> tuple[PairInputs, np.ndarray]:
    """Inputs for (user, item) pairs cut to the user's real columns, and those column numbers."""
    full = model.inputs(histories, [user_id] * len(item_ids), item_ids)
    used = np.flatnonzero((full.hist_items[0] != PAD).numpy()) if len(item_ids) else np.zeros(0, int)
    if not len(used):
        return full, used
    first = int(used[0])
    return PairInputs(*(t[:, first:] for t in full[:4]), full.target_items), used


def attribute_items(model: AttentionModel, histories: Histories, user_id: str, item_ids: Sequence[str],
                    steps: int = DEFAULT_STEPS, tolerance: float = TOLERANCE,
                    max_steps: int = MAX_STEPS) -> list[PairAttribution]:
    """IG attributions of every history event for each of ``item_ids`` (one customer)."""
    item_ids = list(item_ids)
    inputs, columns = _window(model, histories, user_id, item_ids)
    net = model.network
    if not len(columns):  # no history: nothing to attribute, the score is the cold-start one
        with model.scoring_runtime(), torch.inference_mode():
            logits = net(*inputs).numpy()
        return [PairAttribution(item, float(s), float(s), columns, np.zeros(0), np.zeros(0), 0.0, 0)
                for item, s in zip(item_ids, logits)]
    real = (inputs.hist_items != PAD).numpy()
    keep = real[0]
    with model.scoring_runtime():
        with torch.no_grad():
            history = net.embed_history(*inputs[:4])
            presence = torch.from_numpy(real).to(history.dtype)
            zero = (torch.zeros_like(history), torch.zeros_like(presence))
            scores = net.forward_presence(history, presence, inputs.target_items).numpy()
            base_scores = net.forward_presence(*zero, inputs.target_items).numpy()
            attention = net.attention_weights(*inputs).numpy()
        attributions = np.zeros(real.shape, dtype=np.float64)
        deltas = np.zeros(len(item_ids))
        used_steps = np.zeros(len(item_ids), dtype=int)
        pending = np.arange(len(item_ids))
        n_steps = steps
        ig = IntegratedGradients(net.forward_presence)
        while len(pending):
            idx = torch.from_numpy(pending)
            (attr_history, attr_presence), delta = ig.attribute(
                (history[idx], presence[idx]), baselines=(zero[0][idx], zero[1][idx]),
                additional_forward_args=(inputs.target_items[idx],),
                n_steps=n_steps, return_convergence_delta=True)
            attributions[pending] = (attr_history.sum(-1) + attr_presence).detach().numpy()
            deltas[pending] = delta.detach().numpy()
            used_steps[pending] = n_steps
            gap = np.abs(scores[pending] - base_scores[pending])
            off = np.abs(deltas[pending]) > tolerance * np.maximum(gap, GAP_FLOOR)
            if n_steps * 2 > max_steps:
                if off.any():
                    log.warning("Integrated Gradients did not converge within %d steps for %d pairs",
                                n_steps, int(off.sum()))
                break
            pending, n_steps = pending[off], n_steps * 2
    return [
        PairAttribution(item, float(scores[i]), float(base_scores[i]), columns, attributions[i, keep],
                        attention[i, keep].astype(np.float64), float(deltas[i]), int(used_steps[i]))
        for i, item in enumerate(item_ids)
    ]


def split_attention_shap(shap_value: float, attributions: np.ndarray) -> np.ndarray:
    """Each event's part of the ``attention_score`` SHAP value, in proportion to its attribution.

    The parts sum to ``shap_value`` and keep the attributions' signs relative to their total,
    so an event that pulled the network's score the other way gets a part of the opposite sign.
    When the attributions cancel out (total under a tenth of their absolute sum) a proportional
    split would blow single events up to many times the whole; the events then share it by
    their absolute attribution, which still adds up and stays bounded.
    """
    if not len(attributions) or shap_value == 0.0:
        return np.zeros(len(attributions))
    total, size = float(attributions.sum()), float(np.abs(attributions).sum())
    if size == 0.0:
        return np.full(len(attributions), shap_value / len(attributions))
    if abs(total) >= 0.1 * size:
        return shap_value * attributions / total
    return shap_value * np.abs(attributions) / size


def history_evidence(histories: Histories, user_id: str, pair: PairAttribution, shares: np.ndarray,
                     titles: Mapping[str, str]) -> list[HistoryEvidence]:
    """The pair's events as :class:`HistoryEvidence`, largest |attribution| first."""
    row = int(histories.rows([user_id])[0])
    out = []
    for j, column in enumerate(pair.columns):
        item = histories.item_ids[row, column]
        out.append(HistoryEvidence(
            item_id=item, title=titles.get(item) or item, event_type=histories.event_types[row, column],
            ts=_as_datetime(histories.ts[row, column]), attribution=float(pair.attributions[j]),
            attention=float(pair.attention[j]), score_share=float(shares[j]),
        ))
    out.sort(key=lambda h: -abs(h.attribution))
    return out


def scores_without(model: AttentionModel, histories: Histories, user_id: str, item_id: str,
                   removals: Sequence[Sequence[int]]) -> np.ndarray:
    """The network's logit for (user, item) with each set of window columns removed: their
    positions become padding, so their terms leave the interest vector and the history length
    drops; the other events keep their places (and so their recency)."""
    inputs = model.inputs(histories, [user_id] * len(removals), [item_id] * len(removals))
    drop = torch.zeros(inputs.hist_items.shape, dtype=torch.bool)
    for i, columns in enumerate(removals):
        drop[i, list(columns)] = True
    removed = PairInputs(*(t.masked_fill(drop, PAD) for t in inputs[:4]), inputs.target_items)
    with model.scoring_runtime(), torch.inference_mode():
        return model.network(*removed).numpy().astype(np.float64)


def deletion_drops(model: AttentionModel, histories: Histories, user_id: str, pair: PairAttribution,
                   rng: np.random.Generator) -> tuple[float, float] | None:
    """The deletion test for one (customer, item) pair: the network's score drop when the pair's
    ``DELETED_EVENTS`` most attributed events are removed, and when as many random ones are.
    Faithful attributions make the first larger. None when the window holds fewer than
    ``MIN_DELETION_WINDOW`` events."""
    if len(pair.columns) < MIN_DELETION_WINDOW:
        return None
    sets = [pair.columns[np.argsort(-pair.attributions, kind="stable")[:DELETED_EVENTS]],
            rng.choice(pair.columns, DELETED_EVENTS, replace=False)]
    top, random_ = pair.score - scores_without(model, histories, user_id, pair.item_id, sets)
    return float(top), float(random_)


def _as_datetime(value: np.datetime64) -> datetime:
    return pd.Timestamp(value).to_pydatetime()
