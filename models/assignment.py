"""Which variant of an experiment a customer is in: a pure function of the experiment and the pseudonym.

Deterministic, with no table of assignments to store or lose: the customer's *bucket* is the
first 64 bits of ``sha256(experiment id + ":" + pseudonym)`` read as a fraction of 2^64, a number
in [0, 1) that is uniform over customers, and the variant is the one whose slice of the
cumulative shares holds it. So

* the same customer always gets the same variant of an experiment, in every process and after a
  restart (the API, the customer page and the analysis agree without talking to each other);
* different experiments are independent: the experiment id is part of the hashed text, so being
  in the treatment of one says nothing about the next;
* shares hold: with 20,000 customers each variant's share is within about 1 % of its plan
  (tests/models/test_assignment.py checks this and that the split passes a chi-square test).

Customers are named by pseudonym (``c_`` + hex), never by shop id: the pseudonym is the only id
the product keeps, and hashing it with the experiment id keeps the bucket unlinkable across
experiments. The last variant takes whatever the rounding of the shares leaves at the top.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate

from analytics.experiments_store import Experiment, Variant
from errors import RecsightError

__all__ = ["bucket", "variant_index", "assign"]

_SCALE = float(2**64)


def bucket(experiment_id: str, pseudonym: str) -> float:
    """The customer's place in [0, 1) for this experiment (uniform over customers)."""
    digest = hashlib.sha256(f"{experiment_id}:{pseudonym}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def variant_index(shares: Sequence[float], place: float) -> int:
    """The index of the variant whose slice of the cumulative ``shares`` holds ``place``."""
    if len(shares) < 1 or any(s <= 0 for s in shares):
        raise RecsightError("variant shares must be fractions above 0")
    edges = list(accumulate(shares))[:-1]  # the last slice runs to 1, whatever the rounding left
    return bisect_right(edges, place)


def assign(experiment: Experiment, pseudonym: str) -> Variant:
    """The variant of ``experiment`` that serves the customer ``pseudonym``."""
    index = variant_index([v.share for v in experiment.variants], bucket(experiment.id, pseudonym))
    return experiment.variants[index]
