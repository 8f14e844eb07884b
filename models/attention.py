"""A target-attention network in the style of Deep Interest Network (Zhou et al., KDD 2018).

Why this model: a shopper's history holds several interests at once; which of them matters depends
on the item being scored. DIN's activation unit gives each past behaviour a weight *for this
target*, so the user's interest vector changes with the candidate, and the weights themselves are
an explanation ("this score comes mostly from your views of X").

Shape of the network (``TargetAttentionNetwork``):

* behaviour embedding per history position = item + category + brand + event type + recency
  embeddings (recency: the place in the right-aligned window, 1 = latest);
* target embedding = item + category + brand (the same tables);
* activation unit: MLP over [h, t, h - t, h * t] -> one score per history position; the first
  layer is evaluated algebraically, W[h, t, h-t, h*t] = (A+C)h + (B-C)t + D(h*t), so ranking a
  whole catalogue needs one matrix product per user batch instead of a 4d-wide layer per pair;
* pooling as in DIN: interest = sum over real positions of sigmoid(score) * h. DIN leaves the
  weights un-normalised so the interest vector keeps "how much" as well as "what"; it also makes
  each past event's part of the interest its own term, so taking an event out removes its term
  and leaves the others alone (only the history length moves). A softmax would hand the removed
  event's weight to its near-copies: on Online Retail, whose histories are runs of similar
  wholesale lines, removing the three most attributed events then changed the score less than
  removing three random ones. The sigmoid keeps each weight in 0..1, read as "how strongly this
  behaviour counts for this item";
* head: MLP over [interest, t, interest * t, log(1 + history length)] plus a per-item bias.

Training is next-behaviour prediction inside the history table: every position's item is a target
given the behaviours before it (the first position with an empty history teaches the cold-start
score). Loss: sampled softmax over the true item and ``negatives`` items drawn uniformly from the
catalogue, shared by the batch (uniform so popular items are not pushed down artificially; the
per-item bias learns popularity). Early stopping watches each user's last behaviour of the history
table, held out, ranked against a fixed uniform sample of items.

Explanations (Captum): ``forward_presence`` takes the behaviour embeddings and a presence per
position in 0..1; presence 0 is exactly the event removed. Integrated Gradients over both, from
zero (the empty history, the cold-start score) to the real history, gives each past event one
number, what it was plus that it happened, and they add up to score minus cold-start score.
``attention_weights`` gives the pooling weight of every position beside them.

Threads: two by default (``AttentionConfig.threads``), the fastest on an idle 2-core machine
(Beauty epoch 34 s vs 59 s with one). When other jobs keep the cores busy, two OpenMP threads
collapse (each waits for the other to be scheduled): the same epoch took about 390 s; set
``threads=1`` there. ``score`` and ``attention_weights`` always use one thread: their batches are
small (a ranker's candidates), and one thread kept ~300k pairs/s where two fell to ~20k.
"""

from __future__ import annotations

import copy
import io
import logging
import os
import tempfile
import time
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import duckdb
import numpy as np
import torch
from torch import nn

from errors import RecsightError
from models.sequences import (
    PAD, UNKNOWN, Histories, Sequences, Vocabulary, build_histories, build_vocabulary, gather_windows,
    load_sequences,
)

__all__ = ["AttentionConfig", "AttentionModel", "PairInputs", "TargetAttentionNetwork", "train_attention"]

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
    time_budget_s: float | None = None   # stop after the epoch that exceeds it (not deterministic)


class PairInputs(NamedTuple):
    """Model inputs for (user, item) pairs. A tuple of tensors, so Captum can take it as ``inputs``."""

    hist_items: torch.Tensor        # (pairs, L) item index, 0 = padding
    hist_categories: torch.Tensor   # (pairs, L)
    hist_brands: torch.Tensor       # (pairs, L)
    hist_events: torch.Tensor       # (pairs, L)
    target_items: torch.Tensor      # (pairs,)


# --------------------------------------------------------------------------- network


class ActivationUnit(nn.Module):
    """DIN's activation unit: Linear(4d -> H), SiLU, Linear(H -> 1) over [h, t, h - t, h * t].

    ``first`` is an ordinary 4d-wide layer (so the module reads like the paper); ``forward`` uses
    its blocks A, B, C, D algebraically: (A+C)h + (B-C)t + D(h*t). For targets shared by the whole
    batch (negatives, full ranking), D(h*t) for all targets is one matrix product.
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.first = nn.Linear(4 * dim, hidden)
        self.activation = nn.SiLU()
        self.out = nn.Linear(hidden, 1)

    def forward(self, history: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """history (B, L, d); targets (B, M, d) per row or (M, d) shared -> scores (B, L, M)."""
        b, length, d = history.shape
        a, bt, c, dd = self.first.weight.split(d, dim=1)
        h_proj = history @ (a + c).T                                  # (B, L, H)
        t_proj = targets @ (bt - c).T + self.first.bias               # (B, M, H) or (M, H)
        if targets.dim() == 2:
            # All three terms in one (B*L, d+H+1) x (d+H+1, M*H) product: D(h*t) = h @ (D*t)^T, and
            # the per-position and per-target terms ride along as extra columns (no broadcast adds
            # over the large (B, L, M, H) tensor, which would dominate the cost of full ranking).
            m, hidden = targets.shape[0], dd.shape[0]
            x = torch.cat([history, h_proj, history.new_ones(b, length, 1)], dim=-1).reshape(-1, d + hidden + 1)
            per_target = torch.cat([
                targets.unsqueeze(1) * dd,                                     # (M, H, d)
                torch.eye(hidden, dtype=history.dtype).expand(m, hidden, hidden),
                t_proj.unsqueeze(-1),
            ], dim=-1).reshape(m * hidden, d + hidden + 1)
            pre = (x @ per_target.T).view(b, length, m, hidden)
        else:
            cross = (history.unsqueeze(2) * targets.unsqueeze(1)) @ dd.T   # (B, L, M, H)
            pre = cross + h_proj.unsqueeze(2) + t_proj.unsqueeze(1)
        if not torch.is_grad_enabled():
            return self.out(nn.functional.silu(pre, inplace=True)).squeeze(-1)
        return self.out(self.activation(pre)).squeeze(-1)


class Head(nn.Module):
    """MLP over [interest, t, interest * t, log(1 + n)], with the target block shared across users."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.first = nn.Linear(3 * dim + 1, hidden)
        self.activation = nn.SiLU()
        self.out = nn.Linear(hidden, 1)

    def forward(self, interest: torch.Tensor, targets: torch.Tensor, n_history: torch.Tensor) -> torch.Tensor:
        """interest (B, M, d); targets (B, M, d) or (M, d); n_history (B,) -> (B, M)."""
        d = interest.shape[-1]
        w_i, w_t, w_p, w_n = self.first.weight.split([d, d, d, 1], dim=1)
        pre = (interest @ w_i.T + (interest * targets) @ w_p.T + targets @ w_t.T
               + torch.log1p(n_history).view(-1, 1, 1) * w_n.T + self.first.bias)
        return self.out(self.activation(pre)).squeeze(-1)


class TargetAttentionNetwork(nn.Module):
    """The DIN-style scorer. ``forward(*PairInputs)`` -> one logit per pair."""

    def __init__(self, vocab: Vocabulary, config: AttentionConfig) -> None:
        super().__init__()
        d = config.dim
        self.item_embedding = nn.Embedding(vocab.n_items, d, padding_idx=PAD)
        self.category_embedding = nn.Embedding(vocab.n_categories, d, padding_idx=PAD)
        self.brand_embedding = nn.Embedding(vocab.n_brands, d, padding_idx=PAD)
        self.event_embedding = nn.Embedding(vocab.n_events(), d, padding_idx=PAD)
        self.recency_embedding = nn.Embedding(config.max_history + 1, d, padding_idx=PAD)
        self.item_bias = nn.Embedding(vocab.n_items, 1, padding_idx=PAD)
        self.attention_unit = ActivationUnit(d, config.attention_hidden)
        self.head = Head(d, config.head_hidden)
        self.dropout = nn.Dropout(config.dropout)
        self.register_buffer("item_category", torch.as_tensor(vocab.item_category, dtype=torch.long))
        self.register_buffer("item_brand", torch.as_tensor(vocab.item_brand, dtype=torch.long))
        self._init_weights()

    def _init_weights(self) -> None:
        for table in (self.item_embedding, self.category_embedding, self.brand_embedding,
                      self.event_embedding, self.recency_embedding):
            nn.init.normal_(table.weight, std=0.05)
        nn.init.zeros_(self.item_bias.weight)
        with torch.no_grad():
            # padding and "unknown" rows stay zero: an unknown id contributes nothing of its own
            for table in (self.item_embedding, self.category_embedding, self.brand_embedding,
                          self.event_embedding):
                table.weight[[PAD, UNKNOWN]] = 0.0
            self.recency_embedding.weight[PAD] = 0.0

    # -- embeddings ---------------------------------------------------------------------------

    def embed_history(self, hist_items: torch.Tensor, hist_categories: torch.Tensor,
                      hist_brands: torch.Tensor, hist_events: torch.Tensor) -> torch.Tensor:
        """(B, L) indexes -> (B, L, d) behaviour embeddings: item + category + brand + event type +
        recency, the event's place in the right-aligned window (1 = latest).

        Recency is the place, not the rank among the real events: the two agree on every window
        the network is trained and served on (no gaps), and with the place an event taken out
        (padding, or presence 0 in ``forward_presence``) leaves the other events' recency alone.
        """
        places = torch.arange(hist_items.shape[1], 0, -1, device=hist_items.device)
        recency = places * (hist_items != PAD)
        return (self.item_embedding(hist_items) + self.category_embedding(hist_categories)
                + self.brand_embedding(hist_brands) + self.event_embedding(hist_events)
                + self.recency_embedding(recency))

    def embed_targets(self, items: torch.Tensor) -> torch.Tensor:
        """Item indexes (any shape) -> item + category + brand embeddings."""
        return (self.item_embedding(items) + self.category_embedding(self.item_category[items])
                + self.brand_embedding(self.item_brand[items]))

    # -- scoring ------------------------------------------------------------------------------

    def attend(self, history: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Pooling weights (B, L, M) in 0..1, one per real position and target; 0 on padding."""
        return torch.sigmoid(self.attention_unit(history, targets)) * mask.unsqueeze(-1)

    def logits(self, history: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor,
               target_items: torch.Tensor) -> torch.Tensor:
        """Logits (B, M) of targets (B, M, d) per row or (M, d) shared, given embedded history and
        its (B, L) mask: booleans, or presences in 0..1 (see ``forward_presence``)."""
        weights = self.attend(history, mask, targets)
        interest = weights.transpose(1, 2) @ history                  # (B, M, d)
        n_history = mask.sum(1).to(history.dtype)
        return self.head(interest, targets, n_history) + self.item_bias(target_items).squeeze(-1)

    def forward_presence(self, history: torch.Tensor, presence: torch.Tensor,
                         target_items: torch.Tensor) -> torch.Tensor:
        """Logits (B,) from behaviour embeddings (``embed_history``) and a presence per position.

        Presence 1 on the real positions and 0 on padding is the ordinary forward; presence 0 on a
        real position is the event removed, exactly as padding it would be (its term leaves the
        interest vector and the history length drops by one); in between, the event fades. So
        Integrated Gradients can run from the empty history (zero embeddings and presence: the
        cold-start score) to the customer's real one.
        """
        targets = self.embed_targets(target_items).unsqueeze(1)
        return self.logits(history, presence, targets, target_items.unsqueeze(1)).squeeze(1)

    def forward(self, hist_items: torch.Tensor, hist_categories: torch.Tensor, hist_brands: torch.Tensor,
                hist_events: torch.Tensor, target_items: torch.Tensor) -> torch.Tensor:
        history = self.embed_history(hist_items, hist_categories, hist_brands, hist_events)
        return self.forward_presence(history, (hist_items != PAD).to(history.dtype), target_items)

    def attention_weights(self, hist_items: torch.Tensor, hist_categories: torch.Tensor, hist_brands: torch.Tensor,
                          hist_events: torch.Tensor, target_items: torch.Tensor) -> torch.Tensor:
        """(B, L) pooling weight in 0..1 of each history position for its pair's target (0 on padding)."""
        history = self.embed_history(hist_items, hist_categories, hist_brands, hist_events)
        targets = self.embed_targets(target_items).unsqueeze(1)
        return self.attend(history, hist_items != PAD, targets).squeeze(-1)


# --------------------------------------------------------------------------- runtime


@contextmanager
def _torch_runtime(threads: int) -> Iterator[None]:
    """Fixed thread count and deterministic kernels for the block, restored afterwards."""
    previous_threads = torch.get_num_threads()
    previous_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(max(1, threads))
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_det)


def _window_widths(histories: Histories, rows: np.ndarray) -> np.ndarray:
    """Real (unpadded) positions of each row's window; 0 for users without history (row -1)."""
    real = (histories.items != PAD).sum(1)
    return np.where(rows >= 0, real[np.maximum(rows, 0)] if len(real) else 0, 0)


def _trim(windows: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Drop leading columns that are padding in every row (windows are right-aligned)."""
    items = windows["items"]
    used = (items != PAD).any(axis=0)
    first = int(np.argmax(used)) if used.any() else items.shape[1] - 1
    return {k: torch.from_numpy(np.ascontiguousarray(v[:, first:])) for k, v in windows.items() if k != "rows"}


# --------------------------------------------------------------------------- model


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
        return _torch_runtime(_SCORING_THREADS)

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
        with _torch_runtime(_SCORING_THREADS), torch.inference_mode():
            for start in range(0, len(rows), batch_size):
                idx = order[start:start + batch_size]
                unique_rows, inverse = np.unique(rows[idx], return_inverse=True)
                w = _trim({name: self._history_rows(getattr(histories, name), unique_rows)
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
        with _torch_runtime(_SCORING_THREADS), torch.inference_mode():
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
        with _torch_runtime(self.config.threads), torch.inference_mode():
            item_t = torch.from_numpy(catalogue)
            targets = net.embed_targets(item_t)
            for start in range(0, len(order), user_batch):
                idx = order[start:start + user_batch]
                windows = {name: self._history_rows(getattr(histories, name), rows[idx])
                           for name in ("items", "categories", "brands", "events")}
                t = _trim(windows)
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
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(buffer.getvalue())
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise RecsightError(f"cannot write attention model {path}: {exc.strerror}") from None

    @classmethod
    def load(cls, path: Path) -> "AttentionModel":
        """Read a model written by ``save``; missing, corrupt or incompatible files are one-line errors."""
        path = Path(path)
        if not path.is_file():
            raise RecsightError(f"attention model {path} does not exist: run `python cli.py train` first")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # torch raises many types for a damaged file; all mean the same to a user
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
            config = AttentionConfig(**payload["config"])
            vocab = Vocabulary.from_state(payload["vocab"])
            network = TargetAttentionNetwork(vocab, config)
            network.load_state_dict(payload["state_dict"])
        except (KeyError, TypeError, ValueError, RuntimeError):
            raise RecsightError(f"attention model {path} does not match this code: retrain with `python cli.py train`") from None
        return cls(network, vocab, config, payload.get("training"))


# --------------------------------------------------------------------------- training


@dataclass(frozen=True)
class _Examples:
    user_rows: np.ndarray   # sequence row (user) of each example
    ends: np.ndarray        # flat index of the target behaviour; history = the rows before it


def _split_examples(seqs: Sequences) -> tuple[_Examples, _Examples]:
    """Training targets = every behaviour except each user's last one when the user has two or
    more; those last ones are the early-stopping set."""
    lengths = seqs.lengths
    owner = np.repeat(np.arange(len(lengths)), lengths)
    last = seqs.ptr[1:] - 1
    holdout = np.zeros(len(owner), dtype=bool)
    holdout[last[lengths >= 2]] = True
    flat = np.arange(len(owner))
    train = _Examples(owner[~holdout], flat[~holdout])
    valid = _Examples(owner[holdout], flat[holdout])
    return train, valid


def _batches(examples: _Examples, seqs: Sequences, config: AttentionConfig,
             rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches whose members have similar history lengths (less padding, same randomness)."""
    width = np.minimum(examples.ends - seqs.ptr[examples.user_rows], config.max_history)
    perm = rng.permutation(len(width))
    pool = config.batch_size * 32
    batches = []
    for start in range(0, len(perm), pool):
        chunk = perm[start:start + pool]
        chunk = chunk[np.argsort(width[chunk], kind="stable")]
        batches += [chunk[i:i + config.batch_size] for i in range(0, len(chunk), config.batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _window_tensors(seqs: Sequences, examples: _Examples, idx: np.ndarray, length: int) -> dict[str, torch.Tensor]:
    return _trim(gather_windows(seqs, examples.user_rows[idx], examples.ends[idx], length))


def _validation_ndcg(net: TargetAttentionNetwork, seqs: Sequences, valid: _Examples,
                     negatives: torch.Tensor, config: AttentionConfig) -> float:
    """NDCG@10 of each held-out behaviour ranked among fixed uniform negatives (early stopping only)."""
    net.eval()
    total = 0.0
    with torch.inference_mode():
        neg_targets = net.embed_targets(negatives)
        for start in range(0, len(valid.ends), 256):
            idx = np.arange(start, min(start + 256, len(valid.ends)))
            w = _window_tensors(seqs, valid, idx, config.max_history)
            history = net.embed_history(w["items"], w["categories"], w["brands"], w["events"])
            mask = w["items"] != PAD
            target = torch.from_numpy(seqs.items[valid.ends[idx]])
            pos = net.logits(history, mask, net.embed_targets(target).unsqueeze(1), target.unsqueeze(1))
            neg = net.logits(history, mask, neg_targets, negatives)
            neg = neg.masked_fill(negatives.unsqueeze(0) == target.unsqueeze(1), float("-inf"))
            rank = (neg > pos).sum(1).numpy()
            total += float(np.where(rank < 10, 1.0 / np.log2(rank + 2.0), 0.0).sum())
    net.train()
    return total / max(1, len(valid.ends))


def train_attention(con: duckdb.DuckDBPyConnection, history_table: str,
                    config: AttentionConfig = AttentionConfig()) -> AttentionModel:
    """Train on next-behaviour prediction inside ``history_table``; same seed -> same model."""
    started = time.perf_counter()
    vocab = build_vocabulary(con, history_table)
    seqs = load_sequences(con, history_table, vocab)
    train, valid = _split_examples(seqs)
    if len(train.ends) == 0:
        raise RecsightError(f"history table {history_table} has too few behaviours to train the attention model")
    rng = np.random.default_rng(config.seed)
    catalogue = vocab.known_item_indexes()
    if len(valid.ends) > config.valid_users:
        keep = np.sort(rng.choice(len(valid.ends), config.valid_users, replace=False))
        valid = _Examples(valid.user_rows[keep], valid.ends[keep])
    valid_negatives = torch.from_numpy(np.sort(rng.choice(
        catalogue, min(config.valid_negatives, len(catalogue)), replace=False)))

    with _torch_runtime(config.threads):
        torch.manual_seed(config.seed)
        net = TargetAttentionNetwork(vocab, config)
        net.train()
        optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
        best, best_state, best_epoch, stale, history = -1.0, None, 0, 0, []
        for epoch in range(1, config.epochs + 1):
            epoch_start = time.perf_counter()
            loss_sum = 0.0
            batches = _batches(train, seqs, config, rng)
            for idx in batches:
                loss_sum += _train_step(net, optimizer, seqs, train, idx, catalogue, config, rng)
            score = _validation_ndcg(net, seqs, valid, valid_negatives, config) if len(valid.ends) else 0.0
            history.append({"epoch": epoch, "loss": loss_sum / len(batches), "valid_ndcg@10": score,
                            "seconds": time.perf_counter() - epoch_start})
            log.info("attention epoch %d: loss %.4f, valid sampled NDCG@10 %.4f, %.1f s",
                     epoch, loss_sum / len(batches), score, history[-1]["seconds"])
            if score > best:
                best, best_state, best_epoch, stale = score, copy.deepcopy(net.state_dict()), epoch, 0
            else:
                stale += 1
            if stale >= config.patience:
                break
            if config.time_budget_s is not None and time.perf_counter() - started > config.time_budget_s:
                log.info("attention training stopped by its time budget after epoch %d", epoch)
                break
        if best_state is not None:
            net.load_state_dict(best_state)
    training = {
        "history_table": history_table, "epochs_run": len(history), "best_epoch": best_epoch,
        "valid_sampled_ndcg@10": best, "seconds": time.perf_counter() - started,
        "train_examples": int(len(train.ends)), "users": len(seqs.user_ids), "items": len(catalogue),
        "epochs": history,
    }
    return AttentionModel(net, vocab, config, training)


def _train_step(net: TargetAttentionNetwork, optimizer: torch.optim.Optimizer, seqs: Sequences,
                examples: _Examples, idx: np.ndarray, catalogue: np.ndarray, config: AttentionConfig,
                rng: np.random.Generator) -> float:
    """One sampled-softmax step: the true next item against ``negatives`` shared uniform items."""
    w = _window_tensors(seqs, examples, idx, config.max_history)
    target = torch.from_numpy(seqs.items[examples.ends[idx]])
    negatives = torch.from_numpy(rng.choice(catalogue, config.negatives))
    mask = w["items"] != PAD
    history = net.dropout(net.embed_history(w["items"], w["categories"], w["brands"], w["events"]))
    pos = net.logits(history, mask, net.dropout(net.embed_targets(target)).unsqueeze(1), target.unsqueeze(1))
    neg = net.logits(history, mask, net.dropout(net.embed_targets(negatives)), negatives)
    neg = neg.masked_fill(negatives.unsqueeze(0) == target.unsqueeze(1), float("-inf"))
    logits = torch.cat([pos, neg], dim=1)
    loss = nn.functional.cross_entropy(logits, torch.zeros(len(idx), dtype=torch.long))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())
