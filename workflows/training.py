"""Training a shop and evaluating it: the engine's runs plus what the dashboard stores with a version.

``cli.py train`` (and anything else that trains a shop for people to look at) calls
:func:`train_shop`, ``cli.py evaluate`` :func:`evaluate_shop`. The engine
(:func:`models.training.train`) does not import the explanation layer; the global SHAP view the
Model page shows is computed here, inside the version being written, as one of its ``extras``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from errors import RecsightError
from explain.global_view import write_global_importance
from models.config import EngineConfig
from models.distribution import LOCAL, Distribution
from models.evaluation import evaluate, format_evaluation
from models.training import train
from progress import SILENT, Progress
from workflows.search import write_search

__all__ = ["train_shop", "engine_distribution", "evaluate_shop", "evaluation_text"]


def train_shop(db_path: Path, models_dir: Path, protocol: str | None = None,
               config: EngineConfig | None = None, progress: Progress = SILENT,
               serve: str | None = None, distribution: Distribution | None = None) -> dict[str, Any]:
    """Train and publish a model version with its global importance (the dashboard's global view)
    and its search index and ranker (:func:`workflows.search.write_search`).

    ``config`` None is the full configuration; ``cli.py train --quick`` passes
    :data:`models.config.QUICK`. ``progress`` (the command line's reporter) hears every phase of
    the run. ``serve`` pins the served ranker (``--serve``; None: chosen on validation). Returns
    the training summary. ``distribution`` (``--engine dask``) trains the network, the rankers
    and the precomputed lists on a Dask cluster and several torch processes
    (:mod:`models.distribution`); None is one process.
    """
    return train(db_path, models_dir, protocol=protocol, config=config,
                 extras=(write_global_importance, write_search), progress=progress, serve=serve,
                 distribution=distribution)


def engine_distribution(engine: str = "local", scheduler: str | None = None,
                        workers: int | None = None) -> Distribution | None:
    """``cli.py train --engine {local,dask} [--scheduler ADDR] [--workers N]`` as the
    ``distribution`` :func:`train_shop` takes: None for ``local`` (this process), else a Dask
    cluster (a local one of ``workers`` processes, or the running scheduler at ``scheduler``) and
    ``workers`` torch processes for the attention network. Options that only the Dask engine reads
    are refused with ``local`` rather than silently ignored."""
    if engine == "local":
        if scheduler is not None or workers is not None:
            raise RecsightError("--scheduler and --workers need --engine dask")
        return None
    if engine != "dask":
        raise RecsightError(f"--engine must be local or dask for training, not {engine!r}")
    return Distribution(scheduler=scheduler or LOCAL, workers=2 if workers is None else workers)


def evaluate_shop(db_path: Path, models_dir: Path, k: int = 10, progress: Progress = SILENT) -> dict[str, Any]:
    """The model in use against the baselines on its held-out split (NDCG, hit rate, ... at ``k``),
    as ``cli.py evaluate --json`` prints it; ``progress`` hears its phases."""
    return evaluate(db_path, models_dir, k=k, progress=progress)


def evaluation_text(result: dict[str, Any]) -> str:
    """:func:`evaluate_shop`'s result as the table ``cli.py evaluate`` prints."""
    return format_evaluation(result)
