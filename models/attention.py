"""The attention network as the engine uses it: configuration, inputs, scoring, ranking, files.

:class:`AttentionModel` wraps a trained :class:`models.attention_network.TargetAttentionNetwork`
(the DIN-style network, described there) with its vocabulary and configuration: it reads each
customer's behaviour window, scores (user, item) pairs for the ranker's ``attention_score``
feature, ranks the whole catalogue for evaluation, and saves and loads itself (one file, format
version 2). Training is :func:`models.attention_training.train_attention`.

Threads: two by default (``AttentionConfig.threads``), the fastest on an idle 2-core machine
(Beauty epoch 34 s vs 59 s with one). When other jobs keep the cores busy, two OpenMP threads
collapse (each waits for the other to be scheduled): the same epoch took about 390 s; set
``threads=1`` there. ``score`` and ``attention_weights`` always use one thread: their batches are
small (a ranker's candidates), and one thread kept ~300k pairs/s where two fell to ~20k.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import NamedTuple

import duckdb
import numpy as np
import torch

from atomic import write_bytes
from errors import RecsightError
from models.attention_network import TargetAttentionNetwork, torch_runtime, trim_windows
from models.sequences import PAD, Histories, Vocabulary, build_histories

__all__ = ["AttentionConfig", "AttentionModel", "PairInputs", "attention_config_from"]

log = logging.getLogger(__name__)

_FORMAT = "recsight-attention"
_FORMAT_VERSION = 2   # 2: DIN sum pooling (1 was softmax pooling; its weights mean something else)
_SCORING_THREADS = 1          # score() batches are small: a second thread risks more than it gains
_RANKING_BLOCK = 32_000_000   # floats in one activation-unit block while ranking the catalogue


@dataclass(frozen=True)
class AttentionConfig:
    """Hyper-parameters; the defaults are the ones measured on Amazon Beauty (bench/attention_beauty.py)."""

    max_history: int = 30          # behaviours the attention unit looks at (most recent)
    dim: int = 64                  # embedding size
    attention_hidden: int = 16     # hidden units of the activation unit (cost grows with it per pair)
    head_hidden: int = 32
    dropout: float = 0.2           # on behaviour and target embeddings while training
    epochs: int = 8
    batch_size: int = 512
    negatives: int = 128           # uniform negatives per batch, each scored against every positive
    lr: float = 2e-3
    patience: int = 2              # epochs without validation gain before stopping
    seed: int = 42
    threads: int = 2               # torch threads; use 1 when other jobs share the cores (see above)
    valid_users: int = 2000        # users whose held-out behaviour drives early stopping
    valid_negatives: int = 1000    # fixed uniform items the held-out behaviour is ranked against
    time_budget_s: float | None = None   # checked after every batch; stops there (not deterministic)
    # An epoch longer than this trains on a random sample of this many batches' examples (drawn
    # from ``seed`` and the epoch number, another each epoch), so an epoch's cost stays bounded
    # however many events the shop has; None trains on every example. Reported in ``training``.
    max_batches_per_epoch: int | None = 4000


def attention_config_from(data: dict) -> AttentionConfig:
    """An :class:`AttentionConfig` from its stored plain dict. Files and metadata written before a
    field existed lack it; ``max_batches_per_epoch`` is then None, which is how they were trained."""
    return AttentionConfig(**{"max_batches_per_epoch": None, **data})


class PairInputs(NamedTuple):
    """Model inputs for (user, item) pairs. A tuple of tensors, so Captum can take it as ``inputs``."""

    hist_items: torch.Tensor        # (pairs, L) item index, 0 = padding
    hist_categories: torch.Tensor   # (pairs, L)
    hist_brands: torch.Tensor       # (pairs, L)
    hist_events: torch.Tensor       # (pairs, L)
    target_items: torch.Tensor      # (pairs,)


class AttentionModel:
    """A trained network with its vocabulary and configuration: scoring, ranking, persistence."""

    def __init__(self, network: TargetAttentionNetwork, vocab: Vocabulary, config: AttentionConfig,
                 training: dict | None = None) -> None:
        self.network = network.eval()
        self.vocab = vocab
        self.config = config
        self.training = dict(training or {})

    # -- inputs -------------------------------------------------------------------------------

    def histories(self, con: duckdb.DuckDBPyConnection, history_table: str,
                  user_ids: Sequence[str] | None = None) -> Histories:
        """The last ``max_history`` behaviours per user of ``history_table`` (all users, or these)."""
        return build_histories(con, history_table, self.vocab, self.config.max_history, user_ids)

    def inputs(self, histories: Histories, user_ids: Sequence[str], item_ids: Sequence[str]) -> PairInputs:
        """Tensors for (user, item) pairs, full ``max_history`` width (column j = Histories column j).

        Unknown users get an all-padding history (cold start); unknown items the UNKNOWN index.
        """
        if len(user_ids) != len(item_ids):
            raise RecsightError(f"{len(user_ids)} user ids but {len(item_ids)} item ids: pass one user per item")
        rows = histories.rows(user_ids)
        arrays = [self._history_rows(getattr(histories, name), rows)
                  for name in ("items", "categories", "brands", "events")]
        targets = self.vocab.item_index(list(item_ids))
        return PairInputs(*(torch.from_numpy(a) for a in arrays), torch.from_numpy(targets))

    def scoring_runtime(self) -> AbstractContextManager[None]:
        """The torch setting :meth:`score` runs under (one thread, deterministic kernels), for
        callers that run the network themselves, such as Integrated Gradients in explanations:
        the same kernels give the same numbers as the ranker's ``attention_score`` feature."""
        return torch_runtime(_SCORING_THREADS)

    @staticmethod
    def _history_rows(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
        out = values[np.maximum(rows, 0)] if len(values) else np.zeros((len(rows), values.shape[1]), np.int64)
        out[rows < 0] = PAD
        return np.ascontiguousarray(out)

    # -- scoring ------------------------------------------------------------------------------

    def score(self, histories: Histories, user_ids: Sequence[str], item_ids: Sequence[str],
              batch_size: int = 8192) -> np.ndarray:
        """One logit per (user, item) pair (higher = more likely next).

        Fallbacks, never errors: a user absent from ``histories`` is scored from an empty history
        (the cold-start score the model learned from first behaviours); an item outside the
        training vocabulary uses the zero "unknown" item, category and brand embeddings and no
        item bias, i.e. the score of a generic item for this user.
        Pairs are grouped by user, so each history is embedded once per batch, not once per pair.
        """
        if len(user_ids) != len(item_ids):
            raise RecsightError(f"{len(user_ids)} user ids but {len(item_ids)} item ids: pass one user per item")
        rows = histories.rows(user_ids)
        targets_all = torch.from_numpy(self.vocab.item_index(list(item_ids)))
        order = np.lexsort((rows, _window_widths(histories, rows)))
        out = np.empty(len(rows), dtype=np.float32)
        net = self.network
        with torch_runtime(_SCORING_THREADS), torch.inference_mode():
            for start in range(0, len(rows), batch_size):
                idx = order[start:start + batch_size]
                unique_rows, inverse = np.unique(rows[idx], return_inverse=True)
                w = trim_windows({name: self._history_rows(getattr(histories, name), unique_rows)
                           for name in ("items", "categories", "brands", "events")})
                pick = torch.from_numpy(inverse.reshape(-1))
                history = net.embed_history(w["items"], w["categories"], w["brands"], w["events"])[pick]
                mask = (w["items"] != PAD)[pick]
                target = targets_all[idx]
                logits = net.logits(history, mask, net.embed_targets(target).unsqueeze(1), target.unsqueeze(1))
                out[idx] = logits.squeeze(1).numpy()
        return out

    def attention_weights(self, histories: Histories, user_ids: Sequence[str],
                          item_ids: Sequence[str]) -> np.ndarray:
        """(pairs, max_history) pooling weight in 0..1 per history column (0 on padding)."""
        batch = self.inputs(histories, user_ids, item_ids)
        with torch_runtime(_SCORING_THREADS), torch.inference_mode():
            return self.network.attention_weights(*batch).numpy()

    def top_k(self, histories: Histories, user_ids: Sequence[str], k: int, exclude_seen: bool = True,
              user_batch: int = 64) -> dict[str, list[tuple[str, float]]]:
        """Rank the whole catalogue for each user; with ``exclude_seen``, items in the user's
        history are left out (leave-one-out protocol). Users are batched by history length and
        items chunked, so memory stays bounded and padding costs little.
        """
        if k <= 0:
            raise RecsightError("k must be a positive number of items")
        catalogue = self.vocab.known_item_indexes()
        k = min(k, len(catalogue))
        rows = histories.rows(user_ids)
        order = np.argsort(_window_widths(histories, rows), kind="stable")
        result: dict[str, list[tuple[str, float]]] = {}
        net = self.network
        with torch_runtime(self.config.threads), torch.inference_mode():
            item_t = torch.from_numpy(catalogue)
            targets = net.embed_targets(item_t)
            for start in range(0, len(order), user_batch):
                idx = order[start:start + user_batch]
                windows = {name: self._history_rows(getattr(histories, name), rows[idx])
                           for name in ("items", "categories", "brands", "events")}
                t = trim_windows(windows)
                history = net.embed_history(t["items"], t["categories"], t["brands"], t["events"])
                mask = t["items"] != PAD
                # the activation unit's (users, positions, items, hidden) block stays ~128 MB
                item_chunk = max(256, _RANKING_BLOCK // (mask.numel() * self.config.attention_hidden))
                scores = torch.cat([
                    net.logits(history, mask, targets[c:c + item_chunk], item_t[c:c + item_chunk])
                    for c in range(0, len(catalogue), item_chunk)
                ], dim=1)
                if exclude_seen:
                    for i, row in enumerate(rows[idx]):
                        if row >= 0:
                            seen = histories.seen(row) - catalogue[0]
                            scores[i, seen[(seen >= 0) & (seen < len(catalogue))]] = float("-inf")
                values, positions = torch.topk(scores, k, dim=1)
                for i, u in enumerate(idx):
                    result[user_ids[u]] = [
                        (self.vocab.item_id(int(catalogue[p])), float(v))
                        for p, v in zip(positions[i].tolist(), values[i].tolist()) if v != float("-inf")
                    ]
        return result

    # -- persistence --------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """State dict, vocabulary, configuration and training summary in one file, written atomically."""
        path = Path(path)
        payload = {
            "format": _FORMAT, "version": _FORMAT_VERSION, "config": asdict(self.config),
            "vocab": self.vocab.to_state(), "training": self.training,
            "state_dict": self.network.state_dict(),
        }
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_bytes(path, buffer.getvalue())
        except OSError as exc:
            raise RecsightError(f"cannot write attention model {path}: {exc.strerror}") from None

    @classmethod
    def load(cls, path: Path) -> AttentionModel:
        """Read a model written by ``save``; missing, corrupt or incompatible files are one-line errors."""
        path = Path(path)
        if not path.is_file():
            raise RecsightError(f"attention model {path} does not exist: run `python cli.py train` first")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - torch raises many types for a damaged file; all mean the same to a user
            raise RecsightError(f"attention model {path} is corrupt: retrain with `python cli.py train`") from None
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            raise RecsightError(f"{path} is not a Recsight attention model")
        if payload.get("version") != _FORMAT_VERSION:
            raise RecsightError(
                f"attention model {path} has format version {payload.get('version')}, this code reads "
                f"{_FORMAT_VERSION}: retrain with `python cli.py train`")
        try:
            known = {f.name for f in fields(AttentionConfig)}
            if set(payload["config"]) - known:
                raise ValueError("unknown configuration fields")
            config = attention_config_from(payload["config"])
            vocab = Vocabulary.from_state(payload["vocab"])
            network = TargetAttentionNetwork(vocab, config)
            network.load_state_dict(payload["state_dict"])
        except (KeyError, TypeError, ValueError, RuntimeError):
            raise RecsightError(f"attention model {path} does not match this code: "
                                "retrain with `python cli.py train`") from None
        return cls(network, vocab, config, payload.get("training"))


def _window_widths(histories: Histories, rows: np.ndarray) -> np.ndarray:
    """Real (unpadded) positions of each row's window; 0 for users without history (row -1)."""
    real = (histories.items != PAD).sum(1)
    return np.where(rows >= 0, real[np.maximum(rows, 0)] if len(real) else 0, 0)
