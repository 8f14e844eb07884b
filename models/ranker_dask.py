"""The LambdaRank ranker trained on a Dask cluster: LightGBM's own Dask interface.

:func:`train_ranker_dask` is :func:`models.ranker.train_ranker` with the boosting done by
``lightgbm.dask.DaskLGBMRanker`` (data-parallel LightGBM: every worker bins and builds histograms
of its rows, the workers agree on every split over LightGBM's own sockets, and all of them hold
the same trees). It takes the same feature frame, the same customers for training and for early
stopping (:func:`models.ranker.ranking_sets`), the same parameters, and returns the same
:class:`models.ranker.Ranker`: a booster cut at its best round, so evaluation, TreeSHAP
explanations, the precomputed lists and the app use it unchanged.

Partitions: one per worker, cut at customer boundaries (LightGBM's Dask ranker needs whole query
groups in a partition, with its ``group`` sizes beside it), balanced by rows, and scattered to
that worker, so every worker trains.

Early stopping: the Dask interface passes callbacks to each worker's training, and each worker
evaluates only its local validation rows. So every worker gets the *whole* validation set (one
copy per partition; it is a tenth of the customers), computes the same NDCG on the same trees,
and stops at the same round: LightGBM's ``early_stopping`` works unchanged, and the rounds are
chosen exactly as in one process. With one partition the trees are the single-process trees.

Determinism: one process gives the same model byte for byte; a cluster does not quite. LightGBM's
Dask interface numbers the workers in the order Dask reports where the partitions are, which
changes from run to run, and each rank computes the histogram bins of its share of the features
from its own rows; so two runs on the same data may cut other bins and grow other trees, of the
same quality (tests/models/test_distributed_training.py measures it against the single path).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.ranker import Ranker, RankerConfig, best_trees, group_sizes, ranking_sets
from progress import SILENT, Progress

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["estimator_params", "partition_bounds", "quiet_lightgbm", "train_ranker_dask"]

log = logging.getLogger(__name__)


def train_ranker_dask(client: Client, frame: pd.DataFrame, features: list[str], config: RankerConfig,
                      progress: Progress = SILENT, name: str = "ranker", workers: list[str] | None = None) -> Ranker:
    """Fit LambdaRank on ``client``'s cluster; the same inputs and result as
    :func:`models.ranker.train_ranker`.

    ``workers`` (addresses) are the workers given a partition each, all of the cluster's by
    default. ``progress`` hears ``<name>: training data`` and ``<name>: boosting on N dask workers``
    (the rounds run on the workers and are not counted here)."""
    import dask.array as da
    from lightgbm.dask import DaskLGBMRanker

    progress.phase(f"{name}: training data")
    train, valid = ranking_sets(frame, config)
    workers = workers or sorted(client.scheduler_info()["workers"])
    groups = group_sizes(train)
    bounds = partition_bounds(groups, len(workers))
    x, y = train[features].to_numpy(np.float64), train["label"].to_numpy()
    parts = []
    for worker, (g0, g1) in zip(workers, zip(bounds[:-1], bounds[1:])):
        r0, r1 = int(groups[:g0].sum()), int(groups[:g1].sum())
        parts.append(_scattered(client, worker, x[r0:r1], y[r0:r1], groups[g0:g1]))
    valid_x, valid_y = valid[features].to_numpy(np.float64), valid["label"].to_numpy()
    valid_parts = _broadcast(client, valid_x, valid_y, group_sizes(valid), len(parts))

    progress.phase(f"{name}: boosting on {len(parts)} dask workers")
    quiet_lightgbm()
    model = DaskLGBMRanker(client=client, **estimator_params(config))
    model.fit(
        *(da.concatenate([p[i] for p in parts]) for i in (0, 1)),
        group=da.concatenate([p[2] for p in parts]),
        eval_X=(da.concatenate([p[0] for p in valid_parts]),),
        eval_y=(da.concatenate([p[1] for p in valid_parts]),),
        eval_group=[da.concatenate([p[2] for p in valid_parts])],
        eval_names=["valid"], eval_at=[config.eval_at], feature_name=features,
        callbacks=[lgb.early_stopping(config.early_stopping, verbose=False)],
    )
    validation = float(model.best_score_["valid"][f"ndcg@{config.eval_at}"])
    return best_trees(_standalone(model.booster_), model.best_iteration_, validation, features, config, train)


def estimator_params(config: RankerConfig) -> dict[str, Any]:
    """:meth:`models.ranker.RankerConfig.params` under the scikit-learn names of LightGBM's
    estimators (its defaults would otherwise sit beside the aliases): the same effective
    parameters, checked against the single-process booster's in the tests. Threads are the Dask
    workers' own (LightGBM sets them per worker)."""
    return {
        "objective": "lambdarank", "metric": "ndcg", "n_estimators": config.max_rounds,
        "num_leaves": config.num_leaves, "learning_rate": config.learning_rate,
        "min_child_samples": config.min_data_in_leaf, "colsample_bytree": config.feature_fraction,
        "reg_lambda": config.lambda_l2, "random_state": config.seed,
        "deterministic": True, "force_row_wise": True, "verbosity": -1,
    }


# The network settings LightGBM keeps in a model's parameters, with the values a model trained in
# one process carries: a saved model names no cluster address and never asks for a network.
_STANDALONE = {"num_machines": "1", "machines": "", "local_listen_port": "12400", "tree_learner": "serial"}


def _standalone(booster: lgb.Booster) -> lgb.Booster:
    """``booster`` with the single-process network settings in its parameters (the trees as they are)."""
    lines = booster.model_to_string().splitlines()
    for i, line in enumerate(lines):
        name = line[1:].split(":", 1)[0] if line.startswith("[") and ":" in line else None
        if name in _STANDALONE:
            lines[i] = f"[{name}: {_STANDALONE[name]}]"
    return lgb.Booster(model_str="\n".join(lines) + "\n")


class _LightGBMLog:
    """LightGBM's messages as log records. Without a registered logger LightGBM prints them to
    stdout, where ``cli.py train`` prints its JSON summary; on a cluster every worker announces
    its sockets there ("Listening...", "Connected to rank 1")."""

    def info(self, msg: str) -> None:
        log.debug("lightgbm: %s", msg.strip())

    def warning(self, msg: str) -> None:
        if "n_jobs will be ignored" not in msg:  # the Dask interface sets each worker's threads itself
            log.warning("lightgbm: %s", msg.strip())


def quiet_lightgbm() -> None:
    """Send this process's LightGBM messages to logging (the Dask interface's own, on the driver)."""
    lgb.register_logger(_LightGBMLog())


def partition_bounds(groups: np.ndarray, parts: int) -> list[int]:
    """Group indexes that cut ``groups`` (sizes) into at most ``parts`` runs of about equal rows,
    never inside a group: ``[0, ..., len(groups)]``. Fewer runs when there are fewer groups."""
    parts = max(1, min(parts, len(groups)))
    ends = np.cumsum(groups)
    cuts = np.searchsorted(ends, ends[-1] * np.arange(1, parts) / parts, side="left") + 1
    return sorted({0, *(int(c) for c in cuts if 0 < c < len(groups)), len(groups)})


def _scattered(client: Client, worker: str, x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> tuple:
    """One partition's rows, labels and group sizes as one-chunk Dask arrays held by ``worker``."""
    fx, fy, fg = client.scatter([x, y, groups], workers=[worker])
    return _arrays((fx, x), (fy, y), (fg, groups))


def _broadcast(client: Client, x: np.ndarray, y: np.ndarray, groups: np.ndarray, copies: int) -> list[tuple]:
    """The validation set on every worker, as ``copies`` partitions (one beside each training one)."""
    fx, fy, fg = client.scatter([x, y, groups], broadcast=True)
    return [_arrays((fx, x), (fy, y), (fg, groups)) for _ in range(copies)]


def _arrays(*pairs: tuple[Any, np.ndarray]) -> tuple:
    import dask
    import dask.array as da

    return tuple(da.from_delayed(dask.delayed(future), shape=array.shape, dtype=array.dtype)
                 for future, array in pairs)
