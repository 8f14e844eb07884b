"""Training the attention network: next-behaviour prediction inside a history table.

Every position's item is a target given the behaviours before it (the first position with an
empty history teaches the cold-start score). Loss: sampled softmax over the true item and
``negatives`` items drawn uniformly from the catalogue, shared by the batch (uniform so popular
items are not pushed down artificially; the per-item bias learns popularity). Early stopping
watches each user's last behaviour of the history table, held out, ranked against a fixed uniform
sample of items. The same seed gives the same model (deterministic kernels, seeded sampling).

The network is :mod:`models.attention_network`; the trained result is a
:class:`models.attention.AttentionModel`.
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
from models.sequences import PAD, Sequences, build_vocabulary, gather_windows, load_sequences
from progress import SILENT, Progress

__all__ = ["train_attention"]

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
    return trim_windows(gather_windows(seqs, examples.user_rows[idx], examples.ends[idx], length))


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
                    config: AttentionConfig = _DEFAULT_CONFIG, progress: Progress = SILENT) -> AttentionModel:
    """Train on next-behaviour prediction inside ``history_table``; same seed -> same model.

    ``progress`` hears one phase per epoch counted in batches (an epoch of the full configuration
    takes minutes on a large shop); early stopping may end before the last epoch named.
    """
    started = time.perf_counter()
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

    with torch_runtime(config.threads):
        torch.manual_seed(config.seed)
        net = TargetAttentionNetwork(vocab, config)
        net.train()
        optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
        best, best_state, best_epoch, stale, history = -1.0, None, 0, 0, []
        for epoch in range(1, config.epochs + 1):
            epoch_start = time.perf_counter()
            loss_sum = 0.0
            batches = _batches(train, seqs, config, rng)
            progress.phase(f"attention network, epoch {epoch} of {config.epochs}", total=len(batches), unit="batches")
            for idx in batches:
                loss_sum += _train_step(net, optimizer, seqs, train, idx, catalogue, config, rng)
                progress.advance()
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
