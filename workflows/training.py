"""Training a shop and evaluating it: the engine's runs plus what the dashboard stores with a version.

``cli.py train`` (and anything else that trains a shop for people to look at) calls
:func:`train_shop`, ``cli.py evaluate`` :func:`evaluate_shop`. The engine
(:func:`models.training.train`) does not import the explanation layer; the global SHAP view the
Model page shows is computed here, inside the version being written, as one of its ``extras``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from explain.global_view import write_global_importance
from models.config import EngineConfig
from models.evaluation import evaluate, format_evaluation
from models.training import train
from progress import SILENT, Progress
from workflows.search import write_search

__all__ = ["train_shop", "evaluate_shop", "evaluation_text"]


def train_shop(db_path: Path, models_dir: Path, protocol: str | None = None,
               config: EngineConfig | None = None, progress: Progress = SILENT,
               serve: str | None = None) -> dict[str, Any]:
    """Train and publish a model version with its global importance (the dashboard's global view)
    and its search index and ranker (:func:`workflows.search.write_search`).

    ``config`` None is the full configuration; ``cli.py train --quick`` passes
    :data:`models.config.QUICK`. ``progress`` (the command line's reporter) hears every phase of
    the run. ``serve`` pins the served ranker (``--serve``; None: chosen on validation). Returns
    the training summary.
    """
    return train(db_path, models_dir, protocol=protocol, config=config,
                 extras=(write_global_importance, write_search), progress=progress, serve=serve)


def evaluate_shop(db_path: Path, models_dir: Path, k: int = 10, progress: Progress = SILENT) -> dict[str, Any]:
    """The model in use against the baselines on its held-out split (NDCG, hit rate, ... at ``k``),
    as ``cli.py evaluate --json`` prints it; ``progress`` hears its phases."""
    return evaluate(db_path, models_dir, k=k, progress=progress)


def evaluation_text(result: dict[str, Any]) -> str:
    """:func:`evaluate_shop`'s result as the table ``cli.py evaluate`` prints."""
    return format_evaluation(result)
