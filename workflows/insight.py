"""What the Model page computes beyond a version's stored metadata, each kept once per process.

* The global importance: the version's saved global SHAP sample; for the version in use without
  one (a version trained before it was saved), computed from the loaded model once (seconds).
* The faithfulness checks (:mod:`workflows.faithfulness`) on a sample of customers, run against
  the model in use once per model version.

Both are aggregates over many customers, so caching them per process shows nobody anything new;
recomputing them on every click would make the page take seconds each time.
"""

from __future__ import annotations

import logging
import threading

from dashboard.model_insight import version_folder
from errors import RecsightError
from explain.faithfulness import Faithfulness
from explain.global_view import GlobalImportance, global_importance
from models import registry
from settings import Settings
from workflows.faithfulness import check_faithfulness
from workflows.recommenders import recommender_for

__all__ = ["FAITHFULNESS_CUSTOMERS", "current_version", "importance_of", "faithfulness_of"]

log = logging.getLogger(__name__)

FAITHFULNESS_CUSTOMERS = 12  # customers the faithfulness checks sample (seconds of work; at least k)

_importance: dict[tuple[str, str], GlobalImportance] = {}
_faithfulness: dict[tuple[str, str], Faithfulness] = {}
_lock = threading.Lock()


def current_version(settings: Settings) -> str | None:
    """The name of the model version in use, or None (nothing trained, or an unreadable pointer)."""
    try:
        return registry.current(settings.models_dir)
    except RecsightError:
        return None


def importance_of(settings: Settings, version: str | None) -> GlobalImportance:
    """The global importance of ``version`` (default: the one in use); a RecsightError when there
    is none to show (no model, or an older version saved without one)."""
    current = current_version(settings)
    name = version or current
    if name is None:
        raise RecsightError(f"no trained model in {settings.models_dir}: run `python cli.py train` first")
    folder = version_folder(settings.models_dir, name)
    key = (str(folder.resolve()), name)
    with _lock:
        if key in _importance:
            return _importance[key]
    try:
        importance = global_importance(folder)
    except RecsightError:
        if name != current:
            raise
        log.info("no saved global importance for %s: computing it from the loaded model", name)
        importance = global_importance(recommender_for(settings))
    with _lock:
        _importance[key] = importance
    return importance


def faithfulness_of(settings: Settings) -> Faithfulness:
    """The faithfulness checks of the model in use over :data:`FAITHFULNESS_CUSTOMERS` sampled
    customers (aggregates only), computed once per model version for this process."""
    recommender = recommender_for(settings)
    key = (str(settings.models_dir.resolve()), recommender.artifact.path.name)
    with _lock:
        faith = _faithfulness.get(key)
    if faith is None:
        faith = check_faithfulness(recommender, n_users=FAITHFULNESS_CUSTOMERS)
        with _lock:
            _faithfulness[key] = faith
    return faith
