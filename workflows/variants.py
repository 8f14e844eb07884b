"""What serves one customer: the running experiment's variant for them, or the shop's current model.

Every path that shows a customer their list (the JSON API, the customer page and what it
explains and exports) asks :func:`served_for` instead of taking the current recommender, so a
customer in a running experiment sees, and has explained, the list of their own variant: its
model version (loaded beside the current one by :func:`workflows.recommenders.recommender_for`)
and its rule-set version. Assignment is by pseudonym (:mod:`models.assignment`), so the API, the
page and the analysis agree without storing anything per customer.

Rules: the variant's rule-set version travels in :attr:`Served.rules_version` ("v3", or None
for the current rules) and :func:`rules_version_number` turns it into the number
:mod:`analytics.rules_store` keeps. Applying them is the merchandising use case's; the callers
that apply rules pass this version to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from analytics import experiments_store
from analytics.experiments_store import Experiment
from errors import RecsightError
from models.assignment import assign
from models.serving import Recommender
from settings import Settings
from workflows.recommenders import recommender_for

__all__ = ["Served", "served_for", "served_once", "rules_version_name", "rules_version_number"]


@dataclass(frozen=True)
class Served:
    """The recommender that ranks one customer's list, and the experiment and variant behind it."""

    recommender: Recommender
    model_version: str
    experiment: str | None = None
    variant: str | None = None
    rules_version: str | None = None  # the variant's rule-set version; None: the current rules

    def to_dict(self) -> dict[str, Any]:
        """What the API's recommendations answer says about its serving (None outside an experiment)."""
        return {"experiment": self.experiment, "variant": self.variant, "model_version": self.model_version,
                "rules_version": self.rules_version}

    def describe(self) -> str | None:
        """One line for the customer page: "Experiment x: variant B (model ..., rule set v3)"; None
        outside an experiment."""
        if self.experiment is None:
            return None
        rules = f", rule set {self.rules_version}" if self.rules_version else ", current rules"
        return f"Experiment {self.experiment}: variant {self.variant} (model {self.model_version}{rules})"


def served_for(settings: Settings, user_id: str, now: datetime | None = None) -> Served:
    """The customer's serving at ``now`` (default: the clock): their variant of the running
    experiment, or the current model when none runs. A variant's model version that cannot be
    loaded (pruned, trained on other data) is a RecsightError, like a broken current model:
    serving the current one instead would quietly mix the variants."""
    return _serving(experiments_store.running(settings.db_path, now), user_id,
                    lambda version: recommender_for(settings, version))


def served_once(db_path: Path, models_dir: Path, user_id: str, current: Recommender) -> Served:
    """:func:`served_for` for a one-shot caller (the command line) that loaded ``current`` itself:
    the variant's own version is loaded beside it when the customer's variant names another one
    (the caller closes both)."""

    def load(version: str | None) -> Recommender:
        if version is None or version == current.artifact.path.name:
            return current
        return Recommender.load(Path(db_path), Path(models_dir), version)

    return _serving(experiments_store.running(db_path), user_id, load)


def _serving(experiment: Experiment | None, user_id: str, load: Callable[[str | None], Recommender]) -> Served:
    """The current model (``load(None)``) outside an experiment, else the customer's variant's."""
    if experiment is None:
        recommender = load(None)
        return Served(recommender, recommender.artifact.path.name)
    variant = assign(experiment, user_id)
    try:
        recommender = load(variant.model_version)
    except RecsightError as exc:
        raise RecsightError(f"experiment {experiment.id}, variant {variant.name}: {exc}") from None
    return Served(recommender, recommender.artifact.path.name, experiment.id, variant.name, variant.rules_version)


def rules_version_name(number: int) -> str:
    """A rule-set version as experiments name it: 3 -> "v3"."""
    return f"v{int(number)}"


def rules_version_number(name: str | None) -> int | None:
    """The rule-set version number a variant names ("v3" -> 3); None for the current rules."""
    if name is None:
        return None
    text = name[1:] if name.startswith("v") else name
    if not text.isdigit():
        raise RecsightError(f"rule-set version {name[:20]!r} is not a version like v3")
    return int(text)
