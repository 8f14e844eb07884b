"""Training the attention network: next-behaviour prediction inside a history table.

Every position's item is a target given the behaviours before it (the first position with an
empty history teaches the cold-start score). Loss: sampled softmax over the true item and
``negatives`` items drawn uniformly from the catalogue, shared by the batch (uniform so popular
items are not pushed down artificially; the per-item bias learns popularity). Early stopping
watches each user's last behaviour of the history table, held out, ranked against a fixed uniform
sample of items. The same seed gives the same model (deterministic kernels, seeded sampling).

The network is :mod:`models.attention_network`; the trained result is a
:class:`models.attention.AttentionModel`.

The loop (:func:`fit_attention`) is written once for one process and for several: a
:class:`Shard` says which part of each batch and of the validation set a process handles and how
its numbers are totalled. One process (:data:`SINGLE`) trains on everything, as it always did;
:mod:`models.attention_ddp` runs the same loop in a torch.distributed process group.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass

import duckdb
import numpy as np
import torch
from torch import nn

from errors import RecsightError
from models.attention import AttentionConfig, AttentionModel
from models.attention_network import TargetAttentionNetwork, torch_runtime, trim_windows
from models.sequences import PAD, Sequences, Vocabulary, build_vocabulary, gather_windows, load_sequences
from progress import SILENT, Progress

__all__ = ["AttentionExamples", "SINGLE", "Shard", "attention_examples", "fit_attention", "train_attention"]

log = logging.getLogger(__name__)

_DEFAULT_CONFIG = AttentionConfig()


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
             rng: np.random.Generator, chosen: np.ndarray | None = None) -> list[np.ndarray]:
    """Shuffled batches whose members have similar history lengths (less padding, same randomness).

    ``chosen``: the examples of this epoch when it is a sample (:func:`_epoch_sample`); None: all."""
    width = np.minimum(examples.ends - seqs.ptr[examples.user_rows], config.max_history)
    perm = rng.permutation(len(width) if chosen is None else len(chosen))
    if chosen is not None:
        perm = chosen[perm]
    pool = config.batch_size * 32
    batches = []
    for start in range(0, len(perm), pool):
        chunk = perm[start:start + pool]
        chunk = chunk[np.argsort(width[chunk], kind="stable")]
        batches += [chunk[i:i + config.batch_size] for i in range(0, len(chunk), config.batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _epoch_sample(n_examples: int, config: AttentionConfig, epoch: int) -> np.ndarray | None:
    """The training examples of ``epoch`` when all of them would take more than
    ``config.max_batches_per_epoch`` batches: exactly that many batches' worth, drawn without
    replacement from a generator of its own (the seed and the epoch), so another sample each epoch,
    the same for the same seed, and the same in every process of a distributed run. None (all
    examples) under the cap: the epoch's generator is then untouched, and training is what it was
    without a cap, bit for bit."""
    cap = config.max_batches_per_epoch
    if cap is None or n_examples <= cap * config.batch_size:
        return None
    sampler = np.random.default_rng([config.seed, epoch])
    return np.sort(sampler.choice(n_examples, cap * config.batch_size, replace=False))


def _window_tensors(seqs: Sequences, examples: _Examples, idx: np.ndarray, length: int) -> dict[str, torch.Tensor]:
    return trim_windows(gather_windows(seqs, examples.user_rows[idx], examples.ends[idx], length))


class Shard:
    """Which part of the work this process does: all of it (rank 0 of 1, the single-process path)
    or, in :mod:`models.attention_ddp`, rank ``rank`` of ``world`` processes. The training loop is
    the same either way; a shard says which examples of a batch and of the validation set are
    this process's, wraps the objective for gradient averaging, and totals numbers over the
    processes (identity here, an all-reduce there)."""

    def __init__(self, rank: int = 0, world: int = 1) -> None:
        self.rank = rank
        self.world = world

    def wrap(self, objective: nn.Module) -> nn.Module:
        """The module whose forward and backward train (DistributedDataParallel in a process group)."""
        return objective

    def total(self, values: list[float]) -> list[float]:
        """``values`` summed over every process (one process: themselves)."""
        return values

    def part(self, idx: np.ndarray) -> tuple[np.ndarray, float]:
        """This process's examples of a batch and the factor its mean loss is scaled by, so that the
        gradients averaged over the processes are the whole batch's mean-loss gradient. A process
        left without an example (a batch smaller than the world) computes one with weight 0: every
        process must run the backward pass for the gradients to be averaged."""
        if self.world == 1:
            return idx, 1.0
        mine = np.array_split(idx, self.world)[self.rank]
        if len(mine) == 0:
            return idx[:1], 0.0
        return mine, len(mine) * self.world / len(idx)

    def examples(self, examples: _Examples) -> _Examples:
        """This process's share of a fixed example set (the validation behaviours)."""
        if self.world == 1:
            return examples
        return _Examples(examples.user_rows[self.rank::self.world], examples.ends[self.rank::self.world])


SINGLE = Shard()


@dataclass(frozen=True)
class AttentionExamples:
    """What training reads from the shop, prepared once: the vocabulary, the sequences, the
    training and validation examples, the validation negatives and the random generator in the
    state the epochs start from. Picklable, so the processes of :mod:`models.attention_ddp`
    receive it whole and each draws the same batches and negatives."""

    history_table: str
    vocab: Vocabulary
    seqs: Sequences
    train: _Examples
    valid: _Examples
    catalogue: np.ndarray
    valid_negatives: torch.Tensor
    rng: np.random.Generator


def _validation_dcg(net: TargetAttentionNetwork, seqs: Sequences, valid: _Examples,
                    negatives: torch.Tensor, config: AttentionConfig) -> float:
    """Summed NDCG@10 of each held-out behaviour ranked among fixed uniform negatives (early stopping only)."""
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
    return total


def train_attention(con: duckdb.DuckDBPyConnection, history_table: str,
                    config: AttentionConfig = _DEFAULT_CONFIG, progress: Progress = SILENT) -> AttentionModel:
    """Train on next-behaviour prediction inside ``history_table``; same seed -> same model.

    ``progress`` hears one phase per epoch counted in batches (an epoch of the full configuration
    takes minutes on a large shop); early stopping may end before the last epoch named. The same
    training over several processes is :func:`models.attention_ddp.train_attention_ddp`.
    """
    started = time.perf_counter()
    data = attention_examples(con, history_table, config, progress)
    return fit_attention(data, config, progress, spent=time.perf_counter() - started)


def attention_examples(con: duckdb.DuckDBPyConnection, history_table: str, config: AttentionConfig,
                       progress: Progress = SILENT) -> AttentionExamples:
    """Read the sequences of ``history_table`` and split them into training and validation examples."""
    progress.phase("attention network: loading sequences")
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
    return AttentionExamples(history_table, vocab, seqs, train, valid, catalogue, valid_negatives, rng)


def fit_attention(data: AttentionExamples, config: AttentionConfig, progress: Progress = SILENT,
                  shard: Shard = SINGLE, spent: float = 0.0) -> AttentionModel:
    """The epochs with early stopping on the validation behaviours; ``shard`` says which part of
    every batch and of the validation set this process trains and scores (all of them by default).
    ``spent``: seconds already spent before the epochs (loading), counted in the time budget.

    An epoch trains on at most ``config.max_batches_per_epoch`` batches (a sample of the examples
    above it, :func:`_epoch_sample`) and stops after the batch that exceeds ``config.time_budget_s``;
    both are reported in the returned model's ``training`` summary, never silent."""
    if config.max_batches_per_epoch is not None and config.max_batches_per_epoch < 1:
        raise RecsightError(f"max_batches_per_epoch must be at least 1 (or None), not {config.max_batches_per_epoch}")
    clock = _Budget(time.perf_counter() - spent, config.time_budget_s, shard)
    valid = shard.examples(data.valid)
    with torch_runtime(config.threads):
        torch.manual_seed(config.seed)
        net = TargetAttentionNetwork(data.vocab, config)
        if shard.rank:  # the same initial weights everywhere, but each process its own dropout
            torch.manual_seed(config.seed + shard.rank)
        net.train()
        objective = shard.wrap(_SampledSoftmax(net))
        optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
        best, best_state, best_epoch, stale, history = -1.0, None, 0, 0, []
        for epoch in range(1, config.epochs + 1):
            epoch_start = time.perf_counter()
            chosen = _epoch_sample(len(data.train.ends), config, epoch)
            batches = _batches(data.train, data.seqs, config, data.rng, chosen)
            progress.phase(f"attention network, epoch {epoch} of {config.epochs}", total=len(batches), unit="batches")
            loss_sum, done = 0.0, 0
            for idx in batches:
                loss_sum += _train_step(objective, optimizer, data, idx, config, data.rng, shard)
                progress.advance()
                done += 1
                if clock.over():
                    break
            dcg = _validation_dcg(net, data.seqs, valid, data.valid_negatives, config) if len(valid.ends) else 0.0
            loss_sum, dcg = shard.total([loss_sum, dcg])
            score = dcg / max(1, len(data.valid.ends))
            history.append({"epoch": epoch, "loss": loss_sum / shard.world / done, "valid_ndcg@10": score,
                            "batches": done, "seconds": time.perf_counter() - epoch_start})
            log.info("attention epoch %d: %d batches, loss %.4f, valid sampled NDCG@10 %.4f, %.1f s",
                     epoch, done, history[-1]["loss"], score, history[-1]["seconds"])
            if score > best:
                best, best_state, best_epoch, stale = score, copy.deepcopy(net.state_dict()), epoch, 0
            else:
                stale += 1
            if stale >= config.patience:
                break
            if clock.stopped or clock.over():
                log.info("attention training stopped by its time budget in epoch %d after %d of %d batches",
                         epoch, done, len(batches))
                break
        if best_state is not None:
            net.load_state_dict(best_state)
    return AttentionModel(net, data.vocab, config, _summary(data, config, history, best, best_epoch, clock))


class _Budget:
    """The time budget, checked after every batch. In a process group every rank must stop at the
    same batch (each step is a collective), so the ranks agree through :meth:`Shard.total`: one
    number per batch, and only when a budget is set."""

    def __init__(self, started: float, budget: float | None, shard: Shard) -> None:
        self.started, self.budget, self.shard = started, budget, shard
        self.stopped = False

    def over(self) -> bool:
        if self.budget is None or self.stopped:
            return self.stopped
        late = float(time.perf_counter() - self.started > self.budget)
        self.stopped = self.shard.total([late])[0] > 0
        return self.stopped


def _summary(data: AttentionExamples, config: AttentionConfig, history: list[dict], best: float,
             best_epoch: int, clock: _Budget) -> dict:
    """The model's ``training`` dict: what was trained, on how many examples per epoch, and why it stopped."""
    total = int(len(data.train.ends))
    cap = config.max_batches_per_epoch
    per_epoch = total if cap is None else min(total, cap * config.batch_size)
    return {
        "history_table": data.history_table, "epochs_run": len(history), "best_epoch": best_epoch,
        "valid_sampled_ndcg@10": best, "seconds": time.perf_counter() - clock.started,
        "train_examples": total, "users": len(data.seqs.user_ids), "items": len(data.catalogue),
        "examples_total": total, "examples_per_epoch": per_epoch, "sampled": per_epoch < total,
        "max_batches_per_epoch": cap, "stopped_by_budget": clock.stopped,
        "epochs": history,
    }


class _SampledSoftmax(nn.Module):
    """The training objective as a module around the network: DistributedDataParallel averages
    gradients through hooks that need the forward pass to run through its wrapper, so the loss
    is computed in ``forward`` rather than by calling the network's parts from outside."""

    def __init__(self, net: TargetAttentionNetwork) -> None:
        super().__init__()
        self.net = net

    def forward(self, items: torch.Tensor, categories: torch.Tensor, brands: torch.Tensor, events: torch.Tensor,
                target: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the true next item against the shared negatives."""
        net = self.net
        mask = items != PAD
        history = net.dropout(net.embed_history(items, categories, brands, events))
        pos = net.logits(history, mask, net.dropout(net.embed_targets(target)).unsqueeze(1), target.unsqueeze(1))
        neg = net.logits(history, mask, net.dropout(net.embed_targets(negatives)), negatives)
        neg = neg.masked_fill(negatives.unsqueeze(0) == target.unsqueeze(1), float("-inf"))
        logits = torch.cat([pos, neg], dim=1)
        return nn.functional.cross_entropy(logits, torch.zeros(len(target), dtype=torch.long))


def _train_step(objective: nn.Module, optimizer: torch.optim.Optimizer, data: AttentionExamples,
                idx: np.ndarray, config: AttentionConfig, rng: np.random.Generator, shard: Shard) -> float:
    """One sampled-softmax step: the true next item against ``negatives`` shared uniform items.

    Every process draws the same negatives (the same generator in the same state) and trains on
    its part of the batch (:meth:`Shard.part`)."""
    local, weight = shard.part(idx)
    w = _window_tensors(data.seqs, data.train, local, config.max_history)
    target = torch.from_numpy(data.seqs.items[data.train.ends[local]])
    negatives = torch.from_numpy(rng.choice(data.catalogue, config.negatives))
    loss = objective(w["items"], w["categories"], w["brands"], w["events"], target, negatives)
    if weight != 1.0:
        loss = loss * weight
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())
