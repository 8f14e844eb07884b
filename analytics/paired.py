"""Paired comparisons of two rankers on the same test customers, with a bootstrap 95 % interval.

A table of means says the served model scores 0.074 and its ablation 0.071; whether that gap is
more than the luck of which customers landed in the test window it cannot say. Both models are
scored on the same customers, so the question is about the per-customer differences: their mean,
and how much it moves when the customers are drawn again with replacement (the paired bootstrap,
the percentile interval of :data:`RESAMPLES` resampled means). An interval that excludes zero says
the gap is not noise; one that straddles zero says the test window cannot tell the two apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from analytics.metrics import ndcg_at_k

__all__ = ["PairedDifference", "paired_bootstrap", "per_customer_ndcg", "compare_to", "verdict"]

RESAMPLES = 1000
SEED = 20240324  # fixed: the same evaluation prints the same interval
_CHUNK = 100  # resamples drawn at once (memory: customers x chunk indices)


@dataclass(frozen=True)
class PairedDifference:
    """``a`` minus ``b`` on the same ``users`` customers: the mean difference, its 95 % interval,
    and the difference relative to ``b``'s mean (None where ``b`` scores 0)."""

    difference: float
    low: float
    high: float
    relative: float | None
    users: int

    def to_dict(self) -> dict[str, float | int | None]:
        return {key: (round(value, 6) if isinstance(value, float) else value) for key, value in asdict(self).items()}


def paired_bootstrap(a: Sequence[float], b: Sequence[float], resamples: int = RESAMPLES,
                     seed: int = SEED) -> PairedDifference:
    """The mean of ``a[i] - b[i]`` and its percentile bootstrap 95 % interval (customers drawn
    again with replacement ``resamples`` times)."""
    first, second = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if first.shape != second.shape:
        raise ValueError(f"paired scores need one value per customer on both sides: {first.shape} vs {second.shape}")
    n = first.size
    if n == 0:
        return PairedDifference(0.0, 0.0, 0.0, None, 0)
    diffs = first - second
    rng = np.random.default_rng(seed)
    means = np.concatenate([diffs[rng.integers(0, n, size=(min(_CHUNK, resamples - start), n))].mean(axis=1)
                            for start in range(0, resamples, _CHUNK)])
    low, high = np.percentile(means, [2.5, 97.5])
    base = float(second.mean())
    return PairedDifference(float(diffs.mean()), float(low), float(high),
                            float(diffs.mean()) / base if base > 0 else None, n)


def verdict(low: float, high: float) -> str:
    """What an interval says in words, for every place that shows one (``evaluate``, the Model page)."""
    return "ahead" if low > 0 else ("behind" if high < 0 else "no clear difference")


def per_customer_ndcg(ranking: Mapping[str, Sequence[str]], truth: Mapping[str, Mapping[str, float]],
                      k: int) -> list[float]:
    """NDCG@k of each customer of ``truth``, in the order of their ids (0 for a customer the
    ranking left out): the values :func:`analytics.metrics.evaluate_rankings` averages. Sorted,
    because the bootstrap draws customers by position: the same evaluation must give the same
    interval however the test labels were read."""
    return [ndcg_at_k(ranking.get(user, ()), truth[user], k) for user in sorted(truth)]


def compare_to(served: str, rankings: Mapping[str, Mapping[str, Sequence[str]]],
               truth: Mapping[str, Mapping[str, float]], k: int) -> dict[str, dict[str, float | int | None]]:
    """``served`` against every other model of ``rankings`` in NDCG@k, paired over ``truth``'s
    customers: ``{other: PairedDifference.to_dict()}`` (positive: the served model is ahead)."""
    scores = {name: per_customer_ndcg(ranking, truth, k) for name, ranking in rankings.items()}
    return {name: paired_bootstrap(scores[served], values).to_dict()
            for name, values in scores.items() if name != served}
