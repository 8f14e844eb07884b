"""Top-K ranking metrics, per user and averaged, for every model in one table.

Conventions (the same for every model, so the table compares like with like):

- a ranking is a list of item ids, best first; ``truth`` maps each relevant item to its grade
  (> 0). Leave-one-out has one relevant item per user; temporal windows may have several;
- ``hr@k``: 1 if any relevant item is in the top k; ``recall@k``: relevant items found in the top
  k / relevant items; ``precision@k``: relevant items in the top k / k;
- ``ndcg@k``: DCG with linear gains ``grade / log2(rank + 1)`` over the ideal DCG of the user's
  grades (binary truth gives the usual NDCG);
- ``map@k``: mean over relevant ranks of precision at that rank, divided by min(|relevant|, k);
- ``mrr``: 1 / rank of the first relevant item in the whole list kept (0 if none);
- ``coverage@k``: distinct items in all top-k lists / catalogue size;
- ``novelty@k``: mean self-information ``-log2(p)`` of the recommended items, ``p`` = share of
  users who interacted with the item in the training history (add-one smoothed, so an unseen item
  is defined); higher = less obvious recommendations.

Averages are over the users in ``truth``: a user the model returned nothing for counts as a miss.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

__all__ = [
    "hit_rate_at_k", "recall_at_k", "precision_at_k", "ndcg_at_k", "average_precision_at_k",
    "reciprocal_rank", "coverage_at_k", "novelty_at_k", "evaluate_rankings", "metric_names",
]


def hit_rate_at_k(ranking: Sequence[str], truth: Mapping[str, float], k: int) -> float:
    return 1.0 if any(item in truth for item in ranking[:k]) else 0.0


def recall_at_k(ranking: Sequence[str], truth: Mapping[str, float], k: int) -> float:
    if not truth:
        return 0.0
    return sum(1 for item in ranking[:k] if item in truth) / len(truth)


def precision_at_k(ranking: Sequence[str], truth: Mapping[str, float], k: int) -> float:
    return sum(1 for item in ranking[:k] if item in truth) / k


def ndcg_at_k(ranking: Sequence[str], truth: Mapping[str, float], k: int) -> float:
    dcg = sum(truth.get(item, 0.0) / math.log2(rank + 2) for rank, item in enumerate(ranking[:k]))
    ideal = sum(g / math.log2(rank + 2) for rank, g in enumerate(sorted(truth.values(), reverse=True)[:k]))
    return dcg / ideal if ideal > 0 else 0.0


def average_precision_at_k(ranking: Sequence[str], truth: Mapping[str, float], k: int) -> float:
    if not truth:
        return 0.0
    hits, total = 0, 0.0
    for rank, item in enumerate(ranking[:k], start=1):
        if item in truth:
            hits += 1
            total += hits / rank
    return total / min(len(truth), k)


def reciprocal_rank(ranking: Sequence[str], truth: Mapping[str, float]) -> float:
    for rank, item in enumerate(ranking, start=1):
        if item in truth:
            return 1.0 / rank
    return 0.0


def coverage_at_k(rankings: Mapping[str, Sequence[str]], catalogue_size: int, k: int) -> float:
    if catalogue_size <= 0:
        return 0.0
    return len({item for ranking in rankings.values() for item in ranking[:k]}) / catalogue_size


def novelty_at_k(
    rankings: Mapping[str, Sequence[str]], item_users: Mapping[str, int], n_users: int, k: int
) -> float:
    total, count = 0.0, 0
    for ranking in rankings.values():
        for item in ranking[:k]:
            total += -math.log2((item_users.get(item, 0) + 1) / (n_users + 1))
            count += 1
    return total / count if count else 0.0


def metric_names(k: int) -> list[str]:
    """The metric keys of :func:`evaluate_rankings`, in table order."""
    return [f"hr@{k}", f"ndcg@{k}", f"recall@{k}", f"precision@{k}", f"map@{k}", "mrr",
            f"hr@{2 * k}", f"ndcg@{2 * k}", f"coverage@{k}", f"novelty@{k}"]


def evaluate_rankings(
    rankings: Mapping[str, Sequence[str]],
    truth: Mapping[str, Mapping[str, float]],
    k: int,
    *,
    catalogue_size: int,
    item_users: Mapping[str, int],
    n_users: int,
) -> dict[str, float]:
    """Every metric of the module, averaged over the users of ``truth``; also @2k for HR and NDCG."""
    users = list(truth)
    if not users:
        return dict.fromkeys(metric_names(k), 0.0) | {"users": 0}
    sums = dict.fromkeys(metric_names(k)[:8], 0.0)
    for user in users:
        ranking, relevant = rankings.get(user, ()), truth[user]
        sums[f"hr@{k}"] += hit_rate_at_k(ranking, relevant, k)
        sums[f"ndcg@{k}"] += ndcg_at_k(ranking, relevant, k)
        sums[f"recall@{k}"] += recall_at_k(ranking, relevant, k)
        sums[f"precision@{k}"] += precision_at_k(ranking, relevant, k)
        sums[f"map@{k}"] += average_precision_at_k(ranking, relevant, k)
        sums["mrr"] += reciprocal_rank(ranking, relevant)
        sums[f"hr@{2 * k}"] += hit_rate_at_k(ranking, relevant, 2 * k)
        sums[f"ndcg@{2 * k}"] += ndcg_at_k(ranking, relevant, 2 * k)
    result = {name: value / len(users) for name, value in sums.items()}
    evaluated = {u: rankings.get(u, ()) for u in users}
    result[f"coverage@{k}"] = coverage_at_k(evaluated, catalogue_size, k)
    result[f"novelty@{k}"] = novelty_at_k(evaluated, item_users, n_users, k)
    result["users"] = len(users)
    return result
