"""Vectorised weighted draws shared by the synthetic shop's catalogue, customers and behaviour.

Why vectorised: the generator draws for millions of rows at once (10M events in about 20 s);
a Python loop per draw would be hundreds of times slower.
"""

from __future__ import annotations

import numpy as np

__all__ = ["choice_rows", "group_cdf"]


def group_cdf(group: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """`group + cumulative share within the group` for rows sorted by group.

    Sampling a row of group g by popularity is then `searchsorted(cdf, g + u, "right")` with u
    uniform in [0, 1): one vectorised call for millions of draws from different groups.
    """
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    ends = np.r_[starts[1:], len(group)]
    cum = np.cumsum(weight)
    before = np.repeat(np.r_[0.0, cum[starts[1:] - 1]], ends - starts)
    total = np.repeat(cum[ends - 1], ends - starts) - before
    cdf = group + (cum - before) / total
    cdf[ends - 1] = group[ends - 1] + 1.0  # exact, so float error never spills into the next group
    return cdf


def choice_rows(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One column index per row, drawn with probability proportional to that row's weights."""
    cum = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * cum[:, -1]
    return np.minimum((cum <= u[:, None]).sum(axis=1), weights.shape[1] - 1)

