"""The model page's numbers, from a hand-written model metadata and a tiny global SHAP sample.

Metadata: k 10, 50 test customers; NDCG@10 popularity 0.02, co-visitation 0.09, attention 0.05,
ranker 0.10, hybrid 0.117 (so the served model is 30% above the best baseline). Segments:
champions 30 customers, loyal 12, new 3 (fewer than k = 10: suppressed).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dashboard import model_insight as mi
from dashboard.theme import PRIMARY
from errors import RecsightError
from explain.global_view import GlobalImportance
from models import registry

NDCG = {"popularity": 0.02, "covisit": 0.09, "attention": 0.05, "ranker": 0.10, "hybrid": 0.117}
SEGMENT_USERS = {"champions": 30, "loyal": 12, "new": 3}


def _metadata(users: int = 50) -> dict:
    models = {name: {"ndcg@10": v, "hr@10": 2 * v, "mrr": v / 2, "coverage@10": 0.4, "users": users}
              for name, v in NDCG.items()}
    groups = {segment: {name: {"ndcg@10": v * (i + 1), "hr@10": 2 * v, "recall@10": v, "users": n}
                        for name, v in NDCG.items()}
              for i, (segment, n) in enumerate(SEGMENT_USERS.items())}
    return {
        "dataset": "shop", "fingerprint": "abc123", "protocol": "temporal", "trained_at": "2024-05-01T10:00:00+0000",
        "serving_as_of": "2024-04-30T23:59:59", "quick": True, "format_version": registry.FORMAT_VERSION,
        "split": {"target": "purchase", "window_days": 7.0, "train_cutoff": "2024-04-16", "test_cutoff": "2024-04-23"},
        "features": {"ranker": ["a"], "hybrid": ["a", "attention_score"]}, "config": {},
        "ranker_trees": {"ranker": 12, "hybrid": 14},
        "attention_training": {"epochs_run": 1, "train_examples": 1234, "valid_sampled_ndcg@10": 0.5},
        "timings_s": {"split": 0.1, "attention": 3.0, "total": 5.0},
        "packages": {"python": "3.11.7", "lightgbm": "4.7.0"},
        "metrics": {"dataset": "shop", "protocol": "temporal", "target": "purchase", "k": 10, "users": users,
                    "models": models, "candidates": {"recall@50": 0.4, "recall@100": 0.5},
                    "segments": {"by": "RFM segment", "groups": groups}},
    }


# --------------------------------------------------------------------------- evaluation


def test_evaluation_table_lists_baselines_first_and_the_lift_of_the_served_model():
    table, hidden = mi.evaluation_table(_metadata(), k_anonymity=10)
    assert hidden is None
    assert list(table["model"]) == ["popularity", "covisit", "attention", "ranker", "hybrid"]
    assert list(table["kind"]) == ["baseline", "baseline", "component", "component", "served"]
    assert list(table["ndcg@10"]) == list(NDCG.values())
    assert table.loc[table["model"] == "hybrid", "lift"].item() == pytest.approx(0.117 / 0.09 - 1)
    assert table["hr@20"].isna().all()  # not stored: shown as a dash, never as 0


def test_evaluation_over_fewer_than_k_customers_is_hidden():
    table, hidden = mi.evaluation_table(_metadata(users=8), k_anonymity=10)
    assert table.empty and "8 test customers, fewer than 10" in hidden


def test_a_version_without_an_evaluation_says_how_to_get_one():
    with pytest.raises(RecsightError, match="no evaluation"):
        mi.evaluation_table({"dataset": "shop"}, 10)


def test_segments_under_k_customers_are_suppressed():
    table = mi.segment_table(_metadata(), k_anonymity=10)
    assert (table.metric, table.by, table.suppressed) == ("ndcg@10", "RFM segment", 1)
    assert list(table.frame["segment"]) == ["champions", "loyal"]  # largest first; "new" (3) hidden
    assert list(table.frame["users"]) == [30, 12]
    assert table.frame.loc[1, "hybrid"] == pytest.approx(0.117 * 2)
    by_hit_rate = mi.segment_table(_metadata(), 10, "hr@10")
    assert by_hit_rate.frame.loc[0, "covisit"] == pytest.approx(0.18)
    assert mi.segment_table(_metadata(), 31).frame.empty


def test_metric_choices_are_the_metrics_stored_per_segment():
    assert [o["value"] for o in mi.metric_choices(_metadata())] == ["ndcg@10", "hr@10", "recall@10"]
    assert [o["label"] for o in mi.metric_choices(_metadata())] == ["NDCG@10", "Hit rate@10", "Recall@10"]


def test_figures_highlight_the_served_model_and_say_when_empty():
    table, _ = mi.evaluation_table(_metadata(), 10)
    bars = mi.evaluation_figure(table, "ndcg@10")
    assert list(bars.data[0].x) == list(NDCG.values())
    assert bars.data[0].marker.color[-1] == PRIMARY and PRIMARY not in bars.data[0].marker.color[:-1]
    heat = mi.segment_figure(mi.segment_table(_metadata(), 10))
    assert np.asarray(heat.data[0].z).shape == (2, 5)
    assert heat.data[0].y[0] == "Champions (30)"
    empty = mi.segment_figure(mi.segment_table(_metadata(), 1000))
    assert "No segment has enough" in empty.layout.annotations[0].text


# --------------------------------------------------------------------------- versions and metadata


def _version(models: Path, name: str, meta: dict | str) -> None:
    folder = models / registry.VERSIONS_DIR / name
    folder.mkdir(parents=True)
    (folder / registry.METADATA_FILE).write_text(meta if isinstance(meta, str) else json.dumps(meta))


def test_versions_list_the_one_in_use_first_and_skip_broken_ones(tmp_path):
    _version(tmp_path, "20240101-000000-aaaaaa", _metadata())
    _version(tmp_path, "20240301-000000-bbbbbb", dict(_metadata(), dataset="retail"))
    _version(tmp_path, "20240401-000000-cccccc", "{not json")
    _version(tmp_path, ".staging-x", _metadata())
    (tmp_path / registry.CURRENT_FILE).write_text("20240101-000000-aaaaaa\n")
    versions = mi.list_versions(tmp_path)
    assert [v.name for v in versions] == ["20240101-000000-aaaaaa", "20240301-000000-bbbbbb"]
    assert versions[0].current and versions[0].label.endswith("· in use")
    assert versions[1].label.startswith("retail · 2024-05-01 10:00")
    assert mi.read_metadata(tmp_path)["fingerprint"] == "abc123"
    assert mi.read_metadata(tmp_path, "20240301-000000-bbbbbb")["dataset"] == "retail"
    with pytest.raises(RecsightError, match="not in"):
        mi.read_metadata(tmp_path, "../../etc")
    assert mi.list_versions(tmp_path / "nothing") == []


def test_metadata_rows_name_the_data_the_training_and_the_packages():
    rows = dict(mi.metadata_rows(_metadata(), "20240101-000000-aaaaaa"))
    assert rows["Data fingerprint"] == "abc123"
    assert rows["Trained at"] == "2024-05-01T10:00:00+0000"
    assert rows["Evaluation protocol"] == "temporal, target: purchase, test window 7 days"
    assert rows["Trees (ranker / hybrid)"] == "12 / 14"
    assert rows["Training time"] == "5.0 s: split 0.1 s, attention 3.0 s"
    assert rows["Packages"] == "python 3.11.7, lightgbm 4.7.0"
    assert "1,234 training examples" in rows["Attention network"]


def test_a_sampled_or_budget_stopped_network_says_so_on_the_model_page():
    meta = _metadata()
    meta["attention_training"] = {"epochs_run": 1, "train_examples": 9000, "sampled": True,
                                  "examples_per_epoch": 512000, "examples_total": 8100000, "stopped_by_budget": True}
    shown = dict(mi.metadata_rows(meta, "20240101-000000-aaaaaa"))["Attention network"]
    assert "512,000 of 8,100,000 training examples per epoch" in shown
    assert "stopped by the time budget" in shown and "9,000" not in shown


def test_faithfulness_figures_compare_top_and_random_deletions():
    faith = mi.Faithfulness(customers=12, items=3, shap_max_error=1e-16, ig_relative=[1e-7, 1e-4, 0.02],
                            drops=[(0.5, 0.1), (0.3, 0.4), (0.7, 0.0)])
    assert faith.top_beats_random() == pytest.approx(2 / 3)
    bars = mi.deletion_figure(faith)
    assert [trace.name for trace in bars.data] == ["3 most attributed events", "3 random events"]
    assert list(bars.data[0].x) == ["Events removed"]
    assert bars.data[0].y[0] == pytest.approx(0.5) and bars.data[1].y[0] == pytest.approx(0.5 / 3)
    histogram = mi.completeness_figure(faith)
    assert list(histogram.data[0].x) == pytest.approx([-7, -4, np.log10(0.02)])
    assert histogram.layout.shapes[0].x0 == pytest.approx(-2)  # the 1% tolerance line
    nothing = mi.Faithfulness(0, 0, 0.0, [], [])
    assert nothing.top_beats_random() is None
    assert "No customer" in mi.deletion_figure(nothing).layout.annotations[0].text
    assert "No customer" in mi.completeness_figure(nothing).layout.annotations[0].text


# --------------------------------------------------------------------------- global importance


def _importance() -> GlobalImportance:
    """Two features over 14 sampled customers (2 items each): 11 champions, 3 new."""
    rng = np.random.default_rng(0)
    segments = ["champions"] * 11 + ["new"] * 3
    rows = []
    for user, segment in enumerate(segments):
        for rank in (1, 2):
            brand, attention = rng.normal(0.2, 0.1), rng.normal(-0.05, 0.02)
            if segment == "new":
                brand, attention = 0.01, 0.3
            rows.append({"segment": segment, "item_id": f"i{user}{rank}", "rank": rank,
                         "score": 0.1 + brand + attention, "value:brand_share": brand * 2,
                         "value:attention_score": attention * 3, "shap:brand_share": brand,
                         "shap:attention_score": attention})
    return GlobalImportance(["brand_share", "attention_score"], 0.1, len(segments), 2, "RFM segment",
                            pd.DataFrame(rows))


def test_importance_segments_count_customers_not_rows():
    assert mi.importance_segments(_importance().rows, 10) == (["champions"], 1)
    assert mi.importance_segments(_importance().rows, 3) == (["champions", "new"], 0)


def test_importance_per_feature_group_and_segment():
    gi = _importance()
    overall = mi.importance_view(gi, "feature", None, 10)
    assert list(overall["feature"]) == ["brand_share", "attention_score"]
    champions = mi.importance_view(gi, "feature", "champions", 10)
    rows = gi.rows[gi.rows["segment"] == "champions"]
    assert champions.set_index("feature").loc["brand_share", "mean_abs_shap"] == pytest.approx(
        rows["shap:brand_share"].abs().mean())
    groups = mi.importance_view(gi, "group", None, 10)
    assert set(groups["label"]) == {"Affinity", "Attention"}
    with pytest.raises(RecsightError, match="fewer than 10 sampled customers"):
        mi.importance_view(gi, "feature", "new", 10)
    with pytest.raises(RecsightError, match="hidden for privacy"):
        mi.importance_view(gi, "feature", None, 15)
    with pytest.raises(RecsightError, match="unknown importance view"):
        mi.importance_view(gi, "item", None, 10)


def test_dependence_choices_and_additivity():
    gi = _importance()
    bins, missing = mi.dependence_view(gi, "brand_share", "champions", 10)
    assert missing == 0 and bins["rows"].sum() == 22  # every row of the segment, in bins
    assert (bins["customers"] >= 10).all()  # no point for fewer than k customers
    assert bins["value"].to_numpy() == pytest.approx(2 * bins["contribution"].to_numpy())
    assert [o["value"] for o in mi.feature_choices(gi)] == ["brand_share", "attention_score"]
    assert mi.shap_additivity(gi) == pytest.approx(0.0, abs=1e-12)
    broken = GlobalImportance(gi.features, gi.base + 0.25, gi.n_users, gi.k, gi.segment_by, gi.rows)
    assert mi.shap_additivity(broken) == pytest.approx(0.25)
