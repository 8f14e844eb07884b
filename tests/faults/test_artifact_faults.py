"""A missing or damaged model artifact is one clear line wherever it is loaded, never a crash."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import cli
from errors import RecsightError
from models.registry import CURRENT_FILE, VERSIONS_DIR
from tests.faults.support import Shop, busy_customer, current_version
from workflows.recommenders import forget_all, recommender_for


def _version(shop: Shop) -> Path:
    return shop.models / VERSIONS_DIR / current_version(shop.models)


def _garble(path: Path) -> None:
    path.write_bytes(b"\x00\xffnot what was written\n" * 3)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _older_format(path: Path) -> None:
    """An attention network saved by the code before DIN pooling (format 1): its weights would load
    but mean something else, so it must be refused, not served."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    payload["version"] = 1
    torch.save(payload, path)


BREAKAGES: dict[str, tuple[Callable[[Shop], None], str]] = {
    "no CURRENT pointer": (lambda shop: (shop.models / CURRENT_FILE).unlink(), "no trained model"),
    "pointer to a deleted version": (lambda shop: (shop.models / CURRENT_FILE).write_text("20990101-000000-gone\n"),
                                     "missing version"),
    "garbled metadata": (lambda shop: _garble(_version(shop) / "metadata.json"), "corrupt"),
    "metadata of another format": (
        lambda shop: (_version(shop) / "metadata.json").write_text(json.dumps({"format_version": 99})), "format"),
    "garbled ranker": (lambda shop: _garble(_version(shop) / "ranker.txt"), "corrupt"),
    "missing hybrid ranker": (lambda shop: (_version(shop) / "hybrid.txt").unlink(), "missing"),
    "truncated attention network": (lambda shop: _truncate(_version(shop) / "attention.pt"), "corrupt"),
    "attention network of the previous format": (lambda shop: _older_format(_version(shop) / "attention.pt"),
                                                 "has format version 1, this code reads 2: retrain"),
    "missing serving table": (lambda shop: (_version(shop) / "serving" / "serve_items.parquet").unlink(), "missing"),
    "garbled serving table": (lambda shop: _garble(_version(shop) / "serving" / "serve_ix_popular.parquet"),
                              "retrain"),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_a_broken_model_is_one_clear_line_from_the_engine(shop: Shop, breakage: str) -> None:
    damage, words = BREAKAGES[breakage]
    damage(shop)
    with pytest.raises(RecsightError) as caught:
        recommender_for(shop.settings())
    message = str(caught.value)
    assert "\n" not in message and words in message


def test_a_broken_model_is_one_line_and_exit_code_2_on_the_command_line(shop: Shop,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    _truncate(_version(shop) / "attention.pt")
    code = cli.main(["recommend", "--db", str(shop.db), "--models", str(shop.models),
                     "--user", busy_customer(shop.db)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: attention model") and err.count("\n") == 1


def test_a_repaired_model_is_served_again_without_a_restart(shop: Shop) -> None:
    settings = shop.settings()
    good = current_version(shop.models)
    user = busy_customer(shop.db)
    expected = recommender_for(settings).recommend(user, 5).items
    (shop.models / CURRENT_FILE).write_text("20990101-000000-gone\n")
    with pytest.raises(RecsightError, match="missing version"):
        recommender_for(settings)

    (shop.models / CURRENT_FILE).write_text(good + "\n")

    assert recommender_for(settings).recommend(user, 5).items == expected
    forget_all()
