"""Pseudonymous customer ids.

Raw customer ids never enter the database, the models or the exports: at ingest each id becomes
an HMAC-SHA256 keyed with ``RECSIGHT_SECRET``. A lookup hashes what the agent types with the same
key, so the same customer is found without the raw id ever being stored. A keyed hash (not a
plain one) means nobody without the secret can confirm a guessed id.
"""

from __future__ import annotations

import hashlib
import hmac

from errors import RecsightError

__all__ = ["pseudonymise", "PSEUDONYM_LENGTH"]

# 20 hex characters = 80 bits: collisions are negligible for any shop's customer base.
PSEUDONYM_LENGTH = 20


def pseudonymise(raw_id: str, secret: str) -> str:
    """Return the pseudonym of ``raw_id`` under ``secret`` (stable, not reversible)."""
    if not secret:
        raise ValueError("a non-empty secret is required to pseudonymise customer ids")
    try:
        raw = str(raw_id).encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (undecodable bytes from a terminal) is no customer id anyone could hold.
        raise RecsightError("the customer id is not valid text") from None
    digest = hmac.new(secret.encode("utf-8"), raw, hashlib.sha256)
    return "c_" + digest.hexdigest()[:PSEUDONYM_LENGTH]
