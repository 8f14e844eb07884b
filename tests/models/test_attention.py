"""The DIN-style attention model on tiny planted histories: it learns what follows what, it is
deterministic, it survives a save/load, it fails clearly on bad files, and Captum can explain it."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import duckdb
import numpy as np
import pytest
import torch

from analytics import schema
from errors import RecsightError
from models.attention import AttentionConfig, AttentionModel
from models.attention_network import ActivationUnit
from models.attention_training import train_attention
from models.sequences import PAD

CONFIG = AttentionConfig(
    max_history=10, dim=16, attention_hidden=8, head_hidden=16, dropout=0.0, epochs=25, batch_size=128,
    negatives=32, lr=5e-3, patience=4, valid_users=500, threads=1,
)
PAIRS = {f"i0{k}": f"i1{k}" for k in range(5)}   # viewed A -> next bought B
CART_ITEM, AFTER_CART, AFTER_VIEW = "i05", "i15", "i16"   # the behaviour type decides what follows
NOISE = [f"i{k}" for k in range(20, 60)]
BASE = dt.datetime(2024, 1, 1)


def _planted_events(seed: int = 0) -> tuple[list[tuple], dict[str, tuple[str, str]]]:
    """Events of 400 users with planted pairs, and probe users whose history ends on a trigger.

    Returns the event rows and, per probe user, (trigger behaviour, the item that should follow).
    """
    rng = np.random.default_rng(seed)
    rows, probes = [], {}
    for u in range(400):
        user = f"c_{u:04d}"
        seq: list[tuple[str, str]] = [(str(rng.choice(NOISE)), schema.VIEW) for _ in range(rng.integers(2, 6))]
        for _ in range(rng.integers(1, 3)):
            at = int(rng.integers(0, len(seq) + 1))
            kind = rng.integers(0, 3)
            if kind == 0:
                a = str(rng.choice(list(PAIRS)))
                planted = [(a, schema.VIEW), (PAIRS[a], schema.PURCHASE)]
            elif kind == 1:
                planted = [(CART_ITEM, schema.CART), (AFTER_CART, schema.PURCHASE)]
            else:
                planted = [(CART_ITEM, schema.VIEW), (AFTER_VIEW, schema.PURCHASE)]
            seq[at:at] = planted
        if u >= 340:  # probe users: the history ends on a trigger whose follow-up is not in it
            kind = u % 3
            if kind == 0:
                a = str(rng.choice(list(PAIRS)))
                seq.append((a, schema.VIEW))
                probes[user] = (a, PAIRS[a])
            else:
                event = schema.CART if kind == 1 else schema.VIEW
                seq.append((CART_ITEM, event))
                probes[user] = (f"{event} {CART_ITEM}", AFTER_CART if kind == 1 else AFTER_VIEW)
            seq = [(item, ev) for item, ev in seq[:-1] if item not in (probes[user][1],)] + [seq[-1]]
        rows += [(user, item, ev, BASE + dt.timedelta(hours=i)) for i, (item, ev) in enumerate(seq)]
    return rows, probes


def make_shop(con: duckdb.DuckDBPyConnection, seed: int = 0) -> dict[str, tuple[str, str]]:
    """Fill ``con`` with the planted shop (events + items); return the probe users."""
    schema.create_tables(con)
    rows, probes = _planted_events(seed)
    con.executemany(
        f"INSERT INTO {schema.EVENTS} ({schema.USER_ID}, {schema.ITEM_ID}, {schema.EVENT_TYPE}, {schema.TS}) "
        "VALUES (?, ?, ?, ?)", rows)
    items = [(f"i{k:02d}", f"Beauty > cat{k % 6}", None if k % 7 == 0 else f"brand{k % 9}") for k in range(60)]
    con.executemany(
        f"INSERT INTO {schema.ITEMS} ({schema.ITEM_ID}, {schema.CATEGORY}, {schema.BRAND}) VALUES (?, ?, ?)", items)
    return probes


@pytest.fixture(scope="module")
def shop() -> tuple[duckdb.DuckDBPyConnection, dict[str, tuple[str, str]]]:
    con = duckdb.connect()
    probes = make_shop(con)
    return con, probes


@pytest.fixture(scope="module")
def model(shop) -> AttentionModel:
    con, _ = shop
    return train_attention(con, schema.EVENTS, CONFIG)


def _random_pairs(model: AttentionModel, users: list[str], n: int = 200) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(3)
    return ([users[i] for i in rng.integers(0, len(users), n)],
            [model.vocab.items[i] for i in rng.integers(0, len(model.vocab.items), n)])


def test_learns_planted_follow_up_items(shop, model):
    con, probes = shop
    histories = model.histories(con, schema.EVENTS)
    users = sorted(probes)
    top = model.top_k(histories, users, k=3)
    hits = [probes[u][1] in [item for item, _ in top[u]] for u in users]
    assert np.mean(hits) >= 0.8, f"planted follow-up in top 3 for only {np.mean(hits):.0%} of probe users"


def test_event_type_changes_what_follows(shop, model):
    """cart i05 -> i15 is bought next, view i05 -> i16: only the behaviour type tells them apart."""
    con, probes = shop
    histories = model.histories(con, schema.EVENTS)
    for trigger, expected, other in ((f"{schema.CART} {CART_ITEM}", AFTER_CART, AFTER_VIEW),
                                     (f"{schema.VIEW} {CART_ITEM}", AFTER_VIEW, AFTER_CART)):
        users = [u for u, (t, _) in probes.items() if t == trigger]
        right = model.score(histories, users, [expected] * len(users))
        wrong = model.score(histories, users, [other] * len(users))
        assert np.mean(right > wrong) >= 0.8, trigger


def test_attention_focuses_on_the_trigger(shop, model):
    con, probes = shop
    histories = model.histories(con, schema.EVENTS)
    users = [u for u, (t, _) in probes.items() if t in PAIRS]
    weights = model.attention_weights(histories, users, [probes[u][1] for u in users])
    assert weights.shape == (len(users), CONFIG.max_history)
    rows = histories.rows(users)
    pad = histories.items[rows] == PAD
    assert np.all(weights[pad] == 0)
    assert np.all((weights[~pad] > 0) & (weights[~pad] < 1))   # sigmoid pooling weights
    # the trigger is each probe user's most recent behaviour: the last column
    assert np.mean(weights.argmax(1) == CONFIG.max_history - 1) >= 0.8


def test_same_seed_same_scores_and_other_seed_differs(shop, model):
    con, _ = shop
    again = train_attention(con, schema.EVENTS, CONFIG)
    histories = model.histories(con, schema.EVENTS)
    users, items = _random_pairs(model, list(histories.user_ids))
    np.testing.assert_array_equal(model.score(histories, users, items), again.score(histories, users, items))
    other = train_attention(con, schema.EVENTS, replace(CONFIG, seed=7, epochs=2))
    assert not np.array_equal(model.score(histories, users, items), other.score(histories, users, items))


def test_save_load_round_trip_gives_identical_scores(shop, model, tmp_path):
    con, _ = shop
    path = tmp_path / "attention.pt"
    model.save(path)
    loaded = AttentionModel.load(path)
    histories = loaded.histories(con, schema.EVENTS)
    users, items = _random_pairs(model, list(histories.user_ids))
    np.testing.assert_array_equal(model.score(histories, users, items), loaded.score(histories, users, items))
    assert loaded.config == model.config
    assert [p.name for p in tmp_path.iterdir()] == ["attention.pt"]  # no temp file left behind


@pytest.mark.parametrize("content", [b"", b"not a torch file", b"PK\x03\x04garbage"])
def test_corrupt_file_is_one_line_error(tmp_path, content):
    path = tmp_path / "attention.pt"
    path.write_bytes(content)
    with pytest.raises(RecsightError, match="corrupt") as info:
        AttentionModel.load(path)
    assert "\n" not in str(info.value)


def test_missing_and_foreign_files_are_clear_errors(tmp_path, model):
    with pytest.raises(RecsightError, match="does not exist"):
        AttentionModel.load(tmp_path / "absent.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(RecsightError, match="not a Recsight attention model"):
        AttentionModel.load(foreign)
    path = tmp_path / "model.pt"
    model.save(path)
    payload = torch.load(path, weights_only=True)
    payload["config"]["dim"] = 8   # weights no longer fit the declared shape
    torch.save(payload, path)
    with pytest.raises(RecsightError, match="does not match"):
        AttentionModel.load(path)


def test_unknown_user_and_item_have_defined_fallbacks(shop, model):
    con, _ = shop
    histories = model.histories(con, schema.EVENTS)
    known_user = histories.user_ids[0]
    scores = model.score(histories, ["c_nobody", "c_other_nobody", known_user, known_user],
                         [PAIRS["i00"], PAIRS["i00"], "no-such-item", "another-unknown"])
    assert np.all(np.isfinite(scores))
    assert scores[0] == scores[1]   # unknown users: the same cold-start score
    assert scores[2] == scores[3]   # unknown items: the same generic-item score for a user
    cold = model.top_k(histories, ["c_nobody"], k=5)["c_nobody"]
    assert len(cold) == 5
    nobody = model.histories(con, schema.EVENTS, ["c_nobody"])     # a history with no users at all
    assert model.score(nobody, ["c_nobody"], [PAIRS["i00"]])[0] == pytest.approx(scores[0], rel=1e-5)
    assert [i for i, _ in model.top_k(nobody, ["c_nobody"], k=5)["c_nobody"]] == [i for i, _ in cold]


def test_top_k_leaves_out_seen_items(shop, model):
    con, probes = shop
    histories = model.histories(con, schema.EVENTS)
    users = sorted(probes)[:10]
    seen = {u: {r[0] for r in con.execute(
        f"SELECT {schema.ITEM_ID} FROM {schema.EVENTS} WHERE {schema.USER_ID} = ?", [u]).fetchall()} for u in users}
    ranked = model.top_k(histories, users, k=20)
    for u in users:
        items = [i for i, _ in ranked[u]]
        assert len(items) == 20 and not seen[u] & set(items)
        assert [s for _, s in ranked[u]] == sorted((s for _, s in ranked[u]), reverse=True)
    with_seen = model.top_k(histories, users, k=60, exclude_seen=False)
    assert all(seen[u] <= {i for i, _ in with_seen[u]} for u in users)


def test_top_k_scores_agree_with_score(shop, model):
    """The full-ranking path (shared targets, algebraic first layer) equals pair scoring."""
    con, probes = shop
    histories = model.histories(con, schema.EVENTS)
    users = sorted(probes)[:5]
    ranked = model.top_k(histories, users, k=10)
    for u in users:
        items = [i for i, _ in ranked[u]]
        np.testing.assert_allclose(model.score(histories, [u] * len(items), items),
                                   [s for _, s in ranked[u]], rtol=1e-4, atol=1e-5)


def test_activation_unit_equals_the_concatenated_mlp():
    torch.manual_seed(0)
    unit = ActivationUnit(dim=6, hidden=5)
    history, targets = torch.randn(3, 4, 6), torch.randn(7, 6)

    def naive(h, t):  # DIN's definition, pair by pair
        features = torch.cat([h, t, h - t, h * t], dim=-1)
        return unit.out(unit.activation(unit.first(features))).squeeze(-1)

    expected = naive(history.unsqueeze(2).expand(3, 4, 7, 6), targets.expand(3, 4, 7, 6))
    torch.testing.assert_close(unit(history, targets), expected)            # shared targets
    per_row = targets[:3].unsqueeze(1)                                       # one target per row
    torch.testing.assert_close(unit(history, per_row),
                               naive(history.unsqueeze(2), per_row.unsqueeze(1).expand(3, 4, 1, 6)))


def test_captum_integrated_gradients_on_history_embeddings(shop, model):
    from captum.attr import IntegratedGradients

    con, probes = shop
    histories = model.histories(con, schema.EVENTS)
    users = sorted(probes)[:4]
    inputs = model.inputs(histories, users, [probes[u][1] for u in users])
    net = model.network
    embedded = net.embed_history(*inputs[:4])
    presence = (inputs.hist_items != PAD).float()
    torch.testing.assert_close(net.forward_presence(embedded, presence, inputs.target_items), net(*inputs))

    baselines = (torch.zeros_like(embedded), torch.zeros_like(presence))   # the empty history
    ig = IntegratedGradients(net.forward_presence)
    (on_embedding, on_presence), delta = ig.attribute(
        (embedded, presence), baselines=baselines, n_steps=32, return_convergence_delta=True,
        additional_forward_args=(inputs.target_items,))
    per_event = on_embedding.sum(-1) + on_presence       # one contribution per history position
    assert per_event.shape == inputs.hist_items.shape
    assert torch.all(per_event[inputs.hist_items == PAD] == 0)
    with torch.no_grad():
        gap = net(*inputs) - net.forward_presence(*baselines, inputs.target_items)
    assert torch.all(gap.abs() > 0.1)                    # the history matters for these pairs
    assert torch.all(delta.abs() <= 0.01 * gap.abs())    # completeness within 1 % of the gap
    # the planted trigger (the latest event) carries the largest share
    assert torch.all(per_event.argmax(1) == inputs.hist_items.shape[1] - 1)


def test_bad_history_table_is_one_line_error(shop):
    con, _ = shop
    with pytest.raises(RecsightError, match="does not exist"):
        train_attention(con, "no_such_table", CONFIG)
    with pytest.raises(RecsightError, match="not a plain table"):
        train_attention(con, "events; DROP TABLE events", CONFIG)
    con.execute(f"CREATE OR REPLACE VIEW no_ts AS SELECT {schema.USER_ID}, {schema.ITEM_ID}, "
                f"{schema.EVENT_TYPE} FROM {schema.EVENTS}")
    with pytest.raises(RecsightError, match="lacks column 'ts'"):
        train_attention(con, "no_ts", CONFIG)


def test_score_rejects_mismatched_pairs(shop, model):
    con, _ = shop
    histories = model.histories(con, schema.EVENTS)
    with pytest.raises(RecsightError, match="one user per item"):
        model.score(histories, ["c_0000", "c_0001"], ["i00"])


# --------------------------------------------------------------------------- bounded epochs


def _epoch_examples(shop, config: AttentionConfig, monkeypatch) -> tuple[AttentionModel, list[list[int]]]:
    """Train with ``config`` and record, per epoch, the training examples its batches held."""
    import models.attention_training as training

    seen: list[list[int]] = []
    real = training._batches

    def recording(*args, **kwargs):
        batches = real(*args, **kwargs)
        seen.append(sorted(int(i) for b in batches for i in b))
        return batches

    con, _ = shop
    with monkeypatch.context() as patched:
        patched.setattr(training, "_batches", recording)
        return train_attention(con, schema.EVENTS, config), seen


def test_capped_epochs_train_a_seeded_sample_of_cap_batches(shop, monkeypatch):
    config = replace(CONFIG, epochs=3, patience=10, batch_size=32, max_batches_per_epoch=4)
    capped, seen = _epoch_examples(shop, config, monkeypatch)
    total = capped.training["examples_total"]
    assert total > 4 * 32
    assert [e["batches"] for e in capped.training["epochs"]] == [4, 4, 4]
    assert all(len(ex) == len(set(ex)) == 4 * 32 and max(ex) < total for ex in seen)
    assert seen[0] != seen[1] != seen[2] != seen[0]          # another sample each epoch
    assert capped.training["examples_per_epoch"] == 4 * 32
    assert capped.training["sampled"] is True and capped.training["max_batches_per_epoch"] == 4
    assert capped.training["stopped_by_budget"] is False
    again, seen_again = _epoch_examples(shop, config, monkeypatch)
    assert seen_again == seen                                 # the same seed, the same samples
    assert [e["loss"] for e in again.training["epochs"]] == [e["loss"] for e in capped.training["epochs"]]
    _, other = _epoch_examples(shop, replace(config, seed=7), monkeypatch)
    assert other[0] != seen[0]


def test_under_the_cap_training_is_unchanged(shop):
    con, _ = shop
    config = replace(CONFIG, epochs=3, patience=10)
    uncapped = train_attention(con, schema.EVENTS, replace(config, max_batches_per_epoch=None))
    n_batches = uncapped.training["epochs"][0]["batches"]
    at_cap = train_attention(con, schema.EVENTS, replace(config, max_batches_per_epoch=n_batches))
    assert [e["loss"] for e in at_cap.training["epochs"]] == [e["loss"] for e in uncapped.training["epochs"]]
    for name, weights in uncapped.network.state_dict().items():
        assert torch.equal(at_cap.network.state_dict()[name], weights), name
    assert at_cap.training["sampled"] is False
    assert at_cap.training["examples_per_epoch"] == at_cap.training["examples_total"]


def test_time_budget_stops_inside_the_epoch_and_says_so(shop):
    con, _ = shop
    config = replace(CONFIG, epochs=5, batch_size=16, max_batches_per_epoch=None, time_budget_s=0.0)
    model = train_attention(con, schema.EVENTS, config)
    assert model.training["stopped_by_budget"] is True
    assert model.training["epochs_run"] == 1 and model.training["epochs"][0]["batches"] == 1


def test_configurations_stored_before_the_cap_read_as_uncapped(tmp_path, model):
    from dataclasses import asdict

    from models.config import QUICK, engine_config_from

    stored = asdict(QUICK)
    del stored["attention"]["max_batches_per_epoch"]
    assert engine_config_from(stored).attention.max_batches_per_epoch is None
    assert engine_config_from(asdict(QUICK)) == QUICK
    path = tmp_path / "old.pt"
    model.save(path)
    payload = torch.load(path, weights_only=True)
    del payload["config"]["max_batches_per_epoch"]
    torch.save(payload, path)
    assert AttentionModel.load(path).config.max_batches_per_epoch is None
