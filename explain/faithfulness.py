"""Do the explanations describe the model? The faithfulness checks, measured on a sample of customers.

Three checks, each against the loaded model, returning aggregates only (the model page shows
them to analysts; ``bench/explain_faithfulness.py`` reports them per shop):

* SHAP additivity: base value plus the contributions gives the ranker's score;
* Integrated Gradients completeness: the attributions add up to the attention network's score
  gap against no history, within :data:`IG_TOLERANCE`;
* deletion: removing the most attributed history events costs the network more score than
  removing as many random ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from analytics import schema as s
from explain.attributions import MIN_DELETION_WINDOW, attribute_items, deletion_drops
from explain.tree_shap import shap_rows
from models.serving import Recommender

__all__ = ["IG_TOLERANCE", "Faithfulness", "faithfulness_sample", "measure_faithfulness"]

IG_TOLERANCE = 0.01  # the relative completeness error Integrated Gradients aims for


@dataclass(frozen=True)
class Faithfulness:
    """Do the explanations describe the model? Aggregates over ``customers`` sampled customers:

    * ``shap_max_error``: largest |base + sum of SHAP - score| over their explained items;
    * ``ig_relative``: per (customer, item), IG's |convergence delta| / |score - baseline score|,
      and ``ig_steps`` the integration steps the adaptive rule needed for it;
    * ``drops``: per (customer, item), the attention network's score drop when its 3 most
      attributed history events are removed, and when 3 random ones are: faithful attributions
      make the first larger.
    """

    customers: int
    items: int
    shap_max_error: float
    ig_relative: list[float]
    drops: list[tuple[float, float]]
    ig_steps: list[int] = field(default_factory=list)

    def top_beats_random(self) -> float | None:
        """Share of (customer, item) pairs where removing the top-3 events costs more than 3 random ones."""
        return float(np.mean([top > rnd for top, rnd in self.drops])) if self.drops else None


def faithfulness_sample(recommender: Recommender, n_users: int, seed: int) -> list[str]:
    """Up to ``n_users`` customers with enough history for the deletion test, in a fixed
    pseudo-random order (the same customers for the same seed and history)."""
    with recommender.connection() as con:
        return [row[0] for row in con.execute(
            f"""SELECT {s.USER_ID} FROM {recommender.tables.history} GROUP BY 1 HAVING count(*) >= ?
                ORDER BY md5({s.USER_ID} || ?), 1 LIMIT ?""", [MIN_DELETION_WINDOW, str(seed), n_users]).fetchall()]


def measure_faithfulness(recommender: Recommender, n_users: int = 20, k: int = 10, seed: int = 7) -> Faithfulness:
    """The checks of ``bench/explain_faithfulness.py`` on the customers of :func:`faithfulness_sample`,
    for the dashboard. Seconds, not minutes."""
    users = faithfulness_sample(recommender, n_users, seed)
    rng = np.random.default_rng(seed)
    shap_error, items, relative, steps = 0.0, 0, [], []
    drops: list[tuple[float, float]] = []
    for user in users:
        result = recommender.recommend(user, k)
        if not result.items:
            continue
        shap_error = max(shap_error, shap_rows(recommender.ranker, result.features).max_additivity_error)
        items += len(result.items)
        histories = recommender.histories([user])
        for pair in attribute_items(recommender.attention, histories, user, [i.item_id for i in result.items]):
            if not len(pair.columns):
                continue
            relative.append(float(pair.relative_delta))
            steps.append(pair.steps)
            drop = deletion_drops(recommender.attention, histories, user, pair, rng)
            if drop is not None:
                drops.append(drop)
    return Faithfulness(len(users), items, shap_error, relative, drops, steps)
