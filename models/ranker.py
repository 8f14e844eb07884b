"""The LightGBM LambdaRank ranker: one group per user, graded relevance, early stopping.

Early stopping watches NDCG on a *user-level* hold-out (whole groups), so the number of trees is
chosen on users the trees never saw. Training is deterministic for a seed (``deterministic``,
``force_row_wise``, two threads): the same data gives the same model, byte for byte.

Scores are LightGBM's raw scores; :meth:`Ranker.contributions` gives the exact TreeSHAP values
(``pred_contrib``) whose sum plus the base value is that score, which the explanations rely on.

Boosting is minutes of ``cli.py train`` on a large shop, so :func:`train_ranker` reports its rounds
to a :class:`progress.Progress` through a LightGBM callback (:func:`boosting_progress`): a counted
phase whose total is ``max_rounds``. Early stopping usually ends it sooner, so its time left is an
upper bound and its finished line says how many rounds ran.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from analytics import schema as s
from atomic import replace_with
from errors import RecsightError
from progress import SILENT, Progress

__all__ = ["RankerConfig", "Ranker", "best_trees", "boosting_progress", "group_sizes", "ranking_sets", "train_ranker",
           "validation_users"]

log = logging.getLogger(__name__)
_PARALLEL_ROWS = 20_000  # frames at least this long are predicted on two threads (see _threads_for)


@dataclass(frozen=True)
class RankerConfig:
    """LightGBM settings, chosen on Amazon Beauty (bench/train_engine.py): 31 leaves at rate 0.1
    with the first 100 candidates per user matched 63 leaves at 0.05 on all 200 (NDCG@10 within
    0.001) in a third of the time; LambdaRank's cost grows with the group size."""

    num_leaves: int = 31
    learning_rate: float = 0.1
    max_rounds: int = 1000
    early_stopping: int = 20
    min_data_in_leaf: int = 50
    feature_fraction: float = 0.8
    lambda_l2: float = 1.0
    valid_fraction: float = 0.1
    eval_at: int = 10
    max_candidates: int | None = 100  # per user for training, the best-ranked ones; None = all
    seed: int = 42
    threads: int = 2

    def params(self) -> dict:
        """LightGBM's parameters: deterministic, row-wise and seeded, so a retrain is byte-identical."""
        return {
            "objective": "lambdarank",
            "metric": "ndcg",
            "eval_at": [self.eval_at],
            "num_leaves": self.num_leaves,
            "learning_rate": self.learning_rate,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "lambda_l2": self.lambda_l2,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": self.threads,
            "verbosity": -1,
        }


def validation_users(user_ids: pd.Series, fraction: float, seed: int) -> np.ndarray:
    """A stable pseudo-random user-level mask: the same user is always on the same side."""
    def bucket(user: str) -> float:
        digest = hashlib.blake2b(f"{seed}:{user}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    unique = user_ids.unique()
    chosen = {u for u in unique if bucket(u) < fraction}
    return user_ids.isin(chosen).to_numpy()


class Ranker:
    """A trained booster and the feature columns it expects, in order."""

    def __init__(self, booster: lgb.Booster, features: list[str], validation: float | None = None) -> None:
        if list(booster.feature_name()) != list(features):
            raise RecsightError("ranker model does not match its feature list; retrain")
        self.booster = booster
        self.features = list(features)
        # NDCG@k on the training stage's held-out customers (set by train_ranker, None once loaded):
        # what the served model is chosen by (models.training), never the test stage.
        self.validation = validation

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The feature columns in the booster's order; a missing one is an error, never a silent NaN."""
        missing = [f for f in self.features if f not in frame.columns]
        if missing:
            raise RecsightError(f"feature {missing[0]!r} is missing from the feature rows")
        return frame[self.features].to_numpy(dtype=np.float64)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Raw LambdaRank scores (higher = better), one per row."""
        if frame.empty:
            return np.zeros(0)
        return self.booster.predict(self.matrix(frame), raw_score=True, num_threads=_threads_for(len(frame)))

    def contributions(self, frame: pd.DataFrame) -> np.ndarray:
        """Exact TreeSHAP values, shape (rows, features + 1); the last column is the base value."""
        return self.booster.predict(self.matrix(frame), pred_contrib=True, num_threads=_threads_for(len(frame)))

    def importance(self) -> dict[str, float]:
        """Total split gain per feature (the booster's own view; explanations use TreeSHAP)."""
        gains = self.booster.feature_importance(importance_type="gain")
        return {name: float(g) for name, g in zip(self.features, gains)}

    def save(self, path: Path) -> None:
        """Write the model text atomically (:mod:`atomic`: a reader never sees half a booster)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_with(path, lambda tmp: self.booster.save_model(str(tmp)))

    @classmethod
    def load(cls, path: Path, features: list[str]) -> Ranker:
        """A booster saved by :meth:`save`; missing or corrupt files are one-line errors."""
        if not path.exists():
            raise RecsightError(f"ranker model {path} is missing; run `python cli.py train`")
        try:
            booster = lgb.Booster(model_file=str(path))
        except (lgb.basic.LightGBMError, ValueError, OSError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RecsightError(f"ranker model {path} is corrupt ({reason}); retrain") from None
        return cls(booster, features)


def group_sizes(frame: pd.DataFrame) -> np.ndarray:
    """Group sizes of consecutive user runs (frames are sorted by user): LightGBM's ``group``."""
    users = frame[s.USER_ID].to_numpy()
    change = np.flatnonzero(users[1:] != users[:-1]) + 1
    bounds = np.concatenate([[0], change, [len(users)]])
    return np.diff(bounds)


def _trainable(frame: pd.DataFrame, max_candidates: int | None) -> pd.DataFrame:
    """Users with a positive among their (first ``max_candidates``) candidates, sorted by user.

    The cap applies to positives too: keeping a positive from beyond it would teach the ranker
    that a low candidate rank predicts a purchase.
    """
    kept = frame if max_candidates is None else frame[frame["cand_rank"] <= max_candidates]
    positive_users = kept.loc[kept["label"] > 0, s.USER_ID].unique()
    kept = kept[kept[s.USER_ID].isin(positive_users)]
    return kept.sort_values([s.USER_ID, "cand_rank"], kind="stable")


def train_ranker(frame: pd.DataFrame, features: list[str], config: RankerConfig = RankerConfig(),
                 progress: Progress = SILENT, name: str = "ranker") -> Ranker:
    """Fit LambdaRank on feature rows with a ``label`` column (graded relevance, 0 = none).

    ``progress`` hears ``<name>: training data`` (the rows sorted and binned), then
    ``<name>: boosting rounds`` counted in rounds (:func:`boosting_progress`). The same training
    on a Dask cluster is :func:`models.ranker_dask.train_ranker_dask`."""
    progress.phase(f"{name}: training data")
    train, valid = ranking_sets(frame, config)
    params = config.params()
    dtrain = lgb.Dataset(train[features].to_numpy(np.float64), label=train["label"].to_numpy(),
                         group=group_sizes(train), feature_name=features, free_raw_data=True)
    dvalid = lgb.Dataset(valid[features].to_numpy(np.float64), label=valid["label"].to_numpy(),
                         group=group_sizes(valid), reference=dtrain)
    booster = lgb.train(
        params, dtrain, num_boost_round=config.max_rounds, valid_sets=[dvalid], valid_names=["valid"],
        callbacks=[lgb.early_stopping(config.early_stopping, verbose=False), *boosting_progress(progress, name)],
    )
    validation = float(booster.best_score["valid"][f"ndcg@{config.eval_at}"])
    return best_trees(booster, booster.best_iteration, validation, features, config, train)


def ranking_sets(frame: pd.DataFrame, config: RankerConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training and early-stopping rows of a feature frame: the trainable users
    (:func:`_trainable`) split by :func:`validation_users`, each part sorted by user, so one
    user's rows are one consecutive group. Shared by the single-process and the Dask training,
    so both learn from, and stop on, the same customers."""
    data = _trainable(frame, config.max_candidates)
    if data.empty:
        raise RecsightError("no training user has a labelled item among the candidates: nothing to learn")
    is_valid = validation_users(data[s.USER_ID], config.valid_fraction, config.seed)
    train, valid = data[~is_valid], data[is_valid]
    if train.empty or valid.empty:  # tiny data: validate on the training users rather than fail
        train = valid = data
    return train, valid


def best_trees(booster: lgb.Booster, best_iteration: int, validation: float, features: list[str],
               config: RankerConfig, train: pd.DataFrame) -> Ranker:
    """The :class:`Ranker` of ``booster``'s trees up to the best validation round (early stopping's
    choice), with its validation NDCG (what :func:`models.training.choose_served` compares)."""
    log.info("ranker: %d trees, valid ndcg@%d %.4f, %d training users, %d rows",
             best_iteration, config.eval_at, validation, len(group_sizes(train)), len(train))
    final = lgb.Booster(model_str=booster.model_to_string(num_iteration=best_iteration))
    return Ranker(final, features, validation)


def boosting_progress(progress: Progress, name: str) -> list[Callable[[lgb.callback.CallbackEnv], None]]:
    """LightGBM callbacks (``lgb.train(..., callbacks=[...])``) that report the boosting rounds of
    one training as the phase ``<name>: boosting rounds`` of ``progress``, counted in rounds.

    The phase starts before the first round (after LightGBM has binned the data) with
    ``end_iteration - begin_iteration`` (the most rounds) as its total; every finished round is one
    ``advance``, a lock and a clock read, nothing beside a round's milliseconds of boosting (the
    renderer throttles what it writes). None for the silent reporter: the library's callers pay
    nothing, and the trees are the same either way."""
    if progress is SILENT:
        return []
    return [_RoundsStart(progress, f"{name}: boosting rounds"), _RoundDone(progress)]


class _RoundsStart:
    """Starts the rounds' phase once, before the first round (a before-iteration callback)."""

    before_iteration = True

    def __init__(self, progress: Progress, phase: str) -> None:
        self._progress = progress
        self._phase = phase
        self._started = False

    def __call__(self, env: lgb.callback.CallbackEnv) -> None:
        if not self._started:
            self._started = True
            self._progress.phase(self._phase, total=env.end_iteration - env.begin_iteration, unit="rounds")


class _RoundDone:
    """Counts a finished round (an after-iteration callback; it runs before early stopping's,
    so the round that stops the training counts too)."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    def __call__(self, env: lgb.callback.CallbackEnv) -> None:
        self._progress.advance()


def _threads_for(rows: int) -> int:
    """OpenMP threads for predicting ``rows`` rows: two pay off on the batch frames of training and
    precomputing; a request's few hundred rows take longer to hand out than to score, and the
    second thread's wait burns a core that the concurrent requests need."""
    return 1 if rows < _PARALLEL_ROWS else 2
