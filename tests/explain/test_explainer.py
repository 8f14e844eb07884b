"""The explanation entry point and the customer use case: the JSON of `recommend --explain --json`."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from explain.explainer import explanation_payload
from models.serving import Recommender
from tests.explain.conftest import COLD_USER, Shop
from workflows.explaining import explain_customer

ROOT = Path(__file__).resolve().parents[2]
EXPLANATION_KEYS = {"base_value", "contributions", "history", "convergence_delta", "reasons"}


def _check_item_json(item: dict) -> None:
    """The issue's schema, strict JSON types, and base + sum(contributions) == score."""
    explanation = item["explanation"]
    assert set(explanation) == EXPLANATION_KEYS
    assert isinstance(explanation["base_value"], float) and isinstance(explanation["convergence_delta"], float)
    for c in explanation["contributions"]:
        assert set(c) == {"feature", "label", "value", "contribution"}
        assert isinstance(c["feature"], str) and isinstance(c["label"], str) and isinstance(c["contribution"], float)
        assert c["value"] is None or (isinstance(c["value"], float) and math.isfinite(c["value"]))
    for h in explanation["history"]:
        assert set(h) == {"item_id", "event_type", "ts", "attribution", "attention"}
        assert isinstance(h["ts"], str) and isinstance(h["attribution"], float) and 0.0 <= h["attention"] <= 1.0
    assert all(isinstance(r, str) and r for r in explanation["reasons"])
    total = explanation["base_value"] + sum(c["contribution"] for c in explanation["contributions"])
    assert abs(total - item["score"]) < 1e-6


def test_cli_recommend_explain_json_has_the_issue_schema(shop: Shop, active_users: list[str], tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "recommend", "--db", str(shop.db), "--models", str(shop.models),
         "--user", active_users[0], "--k", "5", "--explain", "--json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    payload = json.loads(run.stdout, parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))
    assert payload["user_id"] == active_users[0] and len(payload["items"]) == 5
    for item in payload["items"]:
        assert set(item) == {"rank", "item_id", "title", "score", "match_strength", "explanation"}
        _check_item_json(item)
    assert any(item["explanation"]["history"] for item in payload["items"])


def test_explanation_payload_keeps_the_payload_and_adds_explanations(recommender: Recommender) -> None:
    result = recommender.recommend(COLD_USER, k=3)
    payload = result.to_dict()
    explained = explanation_payload(recommender, result, payload)
    assert "explanation" not in payload["items"][0]  # the caller's dict is not modified
    assert explained["cold_start"] is True and [i["item_id"] for i in explained["items"]] == \
        [i["item_id"] for i in payload["items"]]
    for item in explained["items"]:
        _check_item_json(item)
        assert item["explanation"]["history"] == [] and "popular" in item["explanation"]["reasons"][0]
    json.dumps(explained, allow_nan=False)


def test_customer_explanation_has_profile_and_ranked_items(recommender: Recommender, active_users: list[str]) -> None:
    user = active_users[0]
    explanation = explain_customer(recommender, user, k=4)
    assert explanation.user_id == user and not explanation.cold_start
    assert explanation.model_version == recommender.artifact.path.name
    assert [i.rank for i in explanation.items] == [1, 2, 3, 4]
    profile = explanation.profile
    with recommender.connection() as con:
        n_events, top_brand = con.execute(
            """SELECT count(*), (SELECT i.brand FROM events e JOIN items i USING (item_id) WHERE e.user_id = $u
                                 GROUP BY 1 ORDER BY sum(CASE e.event_type WHEN 'purchase' THEN 4 WHEN 'cart' THEN 3
                                 WHEN 'view' THEN 1 WHEN 'return' THEN 0 ELSE 2 END) DESC, 1 LIMIT 1)
               FROM events WHERE user_id = $u""", {"u": user}).fetchone()
    assert profile["n_events"] == n_events and profile["time_based"] is True
    assert profile["favourite_brands"][0]["brand"] == top_brand
    assert profile["segment"] in {"champions", "loyal", "potential", "new", "at risk", "hibernating", "browsers"}
    assert profile["price_band"]["p25"] <= profile["price_band"]["median"] <= profile["price_band"]["p75"]
    assert all(i.reasons for i in explanation.items)
    cold = explain_customer(recommender, COLD_USER, k=2)
    assert cold.cold_start and cold.profile["n_events"] == 0 and cold.profile["favourite_brands"] == []


def test_counterfactual_sentences_on_request(recommender: Recommender, active_users: list[str]) -> None:
    plain = explain_customer(recommender, active_users[4], k=2)
    assert all(item.counterfactual is None for item in plain.items)
    full = explain_customer(recommender, active_users[4], k=2, counterfactuals=True)
    for item in full.items:
        assert "top 2" in item.counterfactual
