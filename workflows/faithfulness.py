"""Checking that the explanations describe the model: what the model page and the bench run.

The measurement itself is :mod:`explain.faithfulness`; this is the use case around it, so the
page and ``bench/explain_faithfulness.py`` ask the same question the same way.
"""

from __future__ import annotations

from explain.faithfulness import Faithfulness, measure_faithfulness
from models.serving import Recommender

__all__ = ["check_faithfulness"]


def check_faithfulness(recommender: Recommender, n_users: int = 20, k: int = 10, seed: int = 7) -> Faithfulness:
    """The faithfulness checks (SHAP additivity, IG completeness, deletion) over the top ``k`` of
    up to ``n_users`` sampled customers, as aggregates; the same customers for the same ``seed``."""
    return measure_faithfulness(recommender, n_users=n_users, k=k, seed=seed)
