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

Explanations (Captum): ``forward_presence`` takes the behaviour embeddings and a presence per
position in 0..1; presence 0 is exactly the event removed. Integrated Gradients over both, from
zero (the empty history, the cold-start score) to the real history, gives each past event one
number, what it was plus that it happened, and they add up to score minus cold-start score.
``attention_weights`` gives the pooling weight of every position beside them.

The serving wrapper (vocabulary, scoring, persistence) is :mod:`models.attention`; the training
loop :mod:`models.attention_training`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import numpy as np
import torch
from torch import nn

from models.sequences import PAD, UNKNOWN, Vocabulary

__all__ = ["NetworkShape", "ActivationUnit", "Head", "TargetAttentionNetwork", "torch_runtime", "trim_windows"]


class NetworkShape(Protocol):
    """The sizes the network is built with (:class:`models.attention.AttentionConfig` has them);
    a protocol so the network does not depend on the serving wrapper's configuration type."""

    @property
    def dim(self) -> int: ...

    @property
    def max_history(self) -> int: ...

    @property
    def attention_hidden(self) -> int: ...

    @property
    def head_hidden(self) -> int: ...

    @property
    def dropout(self) -> float: ...


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

    def __init__(self, vocab: Vocabulary, config: NetworkShape) -> None:
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
        """Logits (B,) of ``PairInputs``: the real positions present, padding absent."""
        history = self.embed_history(hist_items, hist_categories, hist_brands, hist_events)
        return self.forward_presence(history, (hist_items != PAD).to(history.dtype), target_items)

    def attention_weights(self, hist_items: torch.Tensor, hist_categories: torch.Tensor, hist_brands: torch.Tensor,
                          hist_events: torch.Tensor, target_items: torch.Tensor) -> torch.Tensor:
        """(B, L) pooling weight in 0..1 of each history position for its pair's target (0 on padding)."""
        history = self.embed_history(hist_items, hist_categories, hist_brands, hist_events)
        targets = self.embed_targets(target_items).unsqueeze(1)
        return self.attend(history, hist_items != PAD, targets).squeeze(-1)


# --------------------------------------------------------------------------- tensor helpers


@contextmanager
def torch_runtime(threads: int) -> Iterator[None]:
    """Fixed thread count and deterministic kernels for the block, restored afterwards.

    Deterministic kernels make the same inputs give the same scores in training, serving and the
    explanations; the thread count is the caller's (see :class:`models.attention.AttentionConfig`).
    """
    previous_threads = torch.get_num_threads()
    previous_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(max(1, threads))
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_det)


def trim_windows(windows: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Drop leading columns that are padding in every row (windows are right-aligned), as tensors.

    Padding columns cost a full pass through the activation unit and change nothing, so batches
    of short histories run on the width they need.
    """
    items = windows["items"]
    used = (items != PAD).any(axis=0)
    first = int(np.argmax(used)) if used.any() else items.shape[1] - 1
    return {k: torch.from_numpy(np.ascontiguousarray(v[:, first:])) for k, v in windows.items() if k != "rows"}
