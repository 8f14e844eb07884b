"""train / evaluate / recommend as the command line runs them, and what ``train`` hands its extras."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from errors import RecsightError
from models import registry
from models.batch import HistoryTables, Models
from models.config import QUICK, EngineConfig
from models.evaluation import MODEL_NAMES, evaluate, format_evaluation
from models.training import train
from tests.models.test_splits import COLD_USER, build_shop
from workflows.explaining import format_recommendations, recommend

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, dict]:
    folder = tmp_path_factory.mktemp("pipeline")
    db = build_shop(folder / "shop.duckdb", order_only=True)
    summary = train(db, folder / "models", config=QUICK, extras=(_record_extra,))
    return db, folder / "models", summary


EXTRA_CALLS: list[dict] = []


def _record_extra(folder: Path, con, tables: HistoryTables, models: Models, protocol: str, _progress) -> None:
    """An extra as the layers above pass one: it runs inside the version being written."""
    (folder / "extra.txt").write_text(protocol)
    EXTRA_CALLS.append({"staging": folder.name.startswith(".staging-"),
                        "saved": (folder / registry.RANKER_FILE).exists(), "tables": tables, "models": models,
                        "events": con.execute("SELECT count(*) FROM events").fetchone()[0]})


def test_extras_run_inside_the_version_and_the_metadata_names_the_configuration(trained) -> None:
    db, models, summary = trained
    assert len(EXTRA_CALLS) == 1
    call = EXTRA_CALLS[0]
    assert call["staging"] and call["saved"] and call["events"] > 0
    assert isinstance(call["tables"], HistoryTables) and isinstance(call["models"], Models)
    version = registry.load_current(models)
    assert (version.path / "extra.txt").read_text() == summary["protocol"] == "leave-one-out"
    assert version.metadata["quick"] is True
    rounds = version.metadata["config"]["ranker"]["max_rounds"]
    assert rounds == QUICK.ranker.max_rounds != EngineConfig().ranker.max_rounds


def test_evaluation_has_every_model_and_metric_and_matches_training(trained) -> None:
    db, models, summary = trained
    result = evaluate(db, models, k=10)
    assert result["protocol"] == "leave-one-out" and result["k"] == 10
    assert list(result["models"]) == list(MODEL_NAMES)
    for values in result["models"].values():
        for name in ("hr@10", "ndcg@10", "recall@10", "mrr", "map@10", "coverage@10", "novelty@10", "hr@20"):
            assert 0.0 <= values[name] <= (1.0 if name != "novelty@10" else 100.0)
    assert result["segments"]["by"] == "history length"
    assert set(result["candidates"]) >= {"recall@100", "recall@200"}
    # evaluate recomputes from disk and the database: it must agree with what training measured.
    stored = registry.load_current(models).metadata["metrics"]
    assert stored["models"] == result["models"]
    assert summary["ndcg@10"] == {name: result["models"][name]["ndcg@10"] for name in MODEL_NAMES}
    # The shop is a walk through the catalogue: learned models must beat popularity.
    assert result["models"]["hybrid"]["ndcg@10"] > result["models"]["popularity"]["ndcg@10"]
    table = format_evaluation(result)
    assert "hybrid" in table and "ndcg@10" in table
    # Every comparison of the served model carries its paired interval and its customers.
    against, served = result["comparisons"]["against"], result["comparisons"]["served"]
    # The served ranker is the one training chose on the validation customers (never the test).
    assert served == registry.served_model(registry.load_current(models).metadata) in ("hybrid", "ranker")
    assert set(against) == set(MODEL_NAMES) - {served}
    for name, c in against.items():
        assert c["users"] == result["users"] and c["low"] <= c["difference"] <= c["high"]
        gap = result["models"][served]["ndcg@10"] - result["models"][name]["ndcg@10"]
        assert c["difference"] == pytest.approx(gap, abs=1e-5)  # the table's gap, per customer
    assert stored["comparisons"] == result["comparisons"]
    assert "vs popularity" in table and "customers" in table
    assert result["served"]["model"] == served and f"served: {served} (on the validation customers" in table


def test_the_served_ranker_is_chosen_on_validation_and_the_simpler_one_wins_ties() -> None:
    from types import SimpleNamespace

    from models.training import choose_served

    def pair(without: float, with_attention: float) -> dict:
        return choose_served(SimpleNamespace(validation=without), SimpleNamespace(validation=with_attention))

    assert pair(0.30, 0.31)["model"] == "hybrid" and "beats" in pair(0.30, 0.31)["why"]
    assert pair(0.31, 0.30)["model"] == "ranker" and "does not beat" in pair(0.31, 0.30)["why"]
    assert pair(0.30, 0.30)["model"] == "ranker"
    assert pair(0.31, 0.30)["validation"] == {"hybrid": 0.30, "ranker": 0.31}
    # `train --serve hybrid` pins it, and the reason says so beside the validation scores.
    pinned = choose_served(SimpleNamespace(validation=0.31), SimpleNamespace(validation=0.30), "hybrid")
    assert pinned["model"] == "hybrid" and pinned["why"].startswith("pinned with train --serve hybrid; ")
    with pytest.raises(RecsightError, match="--serve must be one of"):
        choose_served(SimpleNamespace(validation=0.3), SimpleNamespace(validation=0.3), "covisit")


def test_same_seed_same_ranking(trained, tmp_path: Path) -> None:
    db, models, _ = trained
    again = tmp_path / "again"
    train(db, again, config=QUICK)
    first, second = (recommend(db, folder, "c_user0007", k=10) for folder in (models, again))
    assert first.pop("model_version") != second.pop("model_version")  # two versions, one ranking
    assert first == second


def test_recommend_json_shape_and_cold_start(trained) -> None:
    db, models, _ = trained
    result = recommend(db, models, "c_user0007", k=4)
    assert set(result) == {"user_id", "cold_start", "items", "experiment", "variant", "model_version", "rules_version"}
    assert result["experiment"] is None and result["model_version"] == registry.current(models)
    assert result["cold_start"] is False and len(result["items"]) == 4
    assert set(result["items"][0]) == {"rank", "item_id", "title", "score", "match_strength"}
    assert all(0 <= item["match_strength"] <= 100 for item in result["items"])
    cold = recommend(db, models, COLD_USER, k=4)
    assert cold["cold_start"] is True and len(cold["items"]) == 4
    assert "cold start" in format_recommendations(cold)


def test_user_errors_are_one_line(trained, tmp_path: Path) -> None:
    db, models, _ = trained
    with pytest.raises(RecsightError, match="unknown customer"):
        recommend(db, models, "somebody-else", k=4, secret="s")
    with pytest.raises(RecsightError, match="no trained model"):
        evaluate(db, tmp_path / "empty")
    with pytest.raises(RecsightError, match="does not exist"):
        train(tmp_path / "missing.duckdb", tmp_path / "m")


def test_corrupt_ranker_file_is_reported(trained, tmp_path: Path) -> None:
    db, models, _ = trained
    import shutil

    copy = tmp_path / "models"
    shutil.copytree(models, copy)
    current = registry.load_current(copy).path
    (current / registry.HYBRID_FILE).write_text("garbage")
    with pytest.raises(RecsightError, match="corrupt"):
        recommend(db, copy, "c_user0007")


@pytest.mark.slow
def test_command_line_end_to_end_on_the_synthetic_shop(tmp_path: Path) -> None:
    """synth -> ingest -> train --quick -> evaluate --json -> recommend --json, as a user runs them."""
    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "cli.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout

    cli("synth", "--out", str(tmp_path / "shop"), "--users", "600", "--items", "300", "--days", "60")
    db, models = str(tmp_path / "shop.duckdb"), str(tmp_path / "models")
    cli("ingest", "--db", db, "--format", "generic", str(tmp_path / "shop"))
    cli("train", "--db", db, "--models", models, "--quick")
    result = json.loads(cli("evaluate", "--db", db, "--models", models, "--json"))
    assert result["protocol"] == "temporal" and set(result["models"]) == set(MODEL_NAMES)
    import duckdb

    con = duckdb.connect(db, read_only=True)
    user = con.execute("SELECT user_id FROM events ORDER BY user_id LIMIT 1").fetchone()[0]
    con.close()
    rec = json.loads(cli("recommend", "--db", db, "--models", models, "--user", user, "--json"))
    assert rec["user_id"] == user and len(rec["items"]) == 10
    bad = subprocess.run([sys.executable, "cli.py", "recommend", "--db", db, "--models", models, "--user", "nobody"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "unknown customer" in bad.stderr
