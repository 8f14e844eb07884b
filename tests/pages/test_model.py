"""The model page's callback bodies, without a browser, on the session's trained shop
(tests/shop.py) with a copy of its models folder (a test adds an older version to it)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import plotly
import pytest

from analytics.privacy import PSEUDONYM_LENGTH
from explain.global_view import ROWS_FILE, SUMMARY_FILE, global_importance
from models import registry
from service.users import ANALYST
from settings import Settings
from tests.components import find as _find
from tests.components import text as _text
from tests.service.support import app_settings, sign_in
from tests.shop import TrainedShop

PSEUDONYM = re.compile(rf"c_[0-9a-f]{{{PSEUDONYM_LENGTH}}}")


@pytest.fixture(scope="module")
def shop(trained_shop: TrainedShop, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder = tmp_path_factory.mktemp("model_page")
    copy = trained_shop.copy_to(folder, models_only=True)
    return app_settings(folder, db_path=copy.db, models_dir=copy.models)


@pytest.fixture(scope="module")
def served(shop: Settings) -> Iterator[Any]:
    from app import create_app

    app = create_app(shop)
    client = app.server.test_client()
    assert sign_in(client, ANALYST).status_code == 302
    assert client.get("/model").status_code == 200
    yield app


@pytest.fixture(scope="module")
def meta(shop: Settings) -> dict[str, Any]:
    return registry.load_current(shop.models_dir).metadata




def test_the_page_shows_the_stored_evaluation_and_metadata(pm, shop, meta):
    body = pm.update_version(None, shop).body
    served = meta["served"]["model"]
    hybrid = meta["metrics"]["models"]["hybrid"]["ndcg@10"]
    assert _text(_find(body, "mo-kpi-served")) == f"{meta['metrics']['models'][served]['ndcg@10']:.4f}"
    assert meta["served"]["why"] in _text(body)  # why this ranker is the one customers see
    grid = _find(body, "mo-eval-grid")
    assert [row["model"] for row in grid.rowData] == ["popularity", "covisit", "attention", "ranker", "hybrid"]
    assert grid.rowData[-1]["ndcg@10"] == pytest.approx(hybrid)
    # The same numbers turned (one row per metric) for a narrow window, where the wide grid hides.
    narrow = _find(body, "mo-eval-grid-narrow")
    assert [column["field"] for column in narrow.columnDefs[1:]] == [row["model"] for row in grid.rowData]
    assert narrow.rowData[0]["metric"] == "NDCG@10" and narrow.rowData[0]["hybrid"] == pytest.approx(hybrid)
    assert narrow.rowData[-1]["metric"] == "vs best baseline"
    # The served model against each other one, each with its interval and customers.
    compared = _text(_find(body, "mo-comparisons"))
    against = meta["metrics"]["comparisons"]["against"]
    assert len(against) == 4 and served not in against
    assert f"{against['popularity']['low']:+.4f} to {against['popularity']['high']:+.4f}" in compared
    assert f"{meta['metrics']['users']:,}" in compared
    stored = _find(body, pm.CSV.component("csv-data", "comparisons")).data  # its "Download CSV" holds the rows
    assert stored is not None and len(stored["rows"]) == 4
    # Why a segment here may be missing from the overview's filter.
    assert "when this model was trained" in _text(body)
    metadata = _text(_find(body, "mo-metadata"))
    assert meta["fingerprint"] in metadata and meta["trained_at"] in metadata
    assert f"lightgbm {meta['packages']['lightgbm']}" in metadata
    assert _find(body, "mo-faithfulness-version") is not None  # the checks load on their own


def test_faithfulness_checks_run_on_sampled_lists(pm, shop):
    view = pm.update_faithfulness(None, shop)
    rows = view.table.children[0].children[0].children
    checks = {_text(row.children[0]): _text(row.children[1]) for row in rows}
    assert checks["Customers · items checked"] == f"{pm.FAITHFULNESS_CUSTOMERS} · {pm.FAITHFULNESS_CUSTOMERS * 10}"
    error = float(checks["SHAP adds up to the score (their lists)"].removeprefix("max error "))
    assert error < 1e-6  # TreeSHAP adds up to the score
    assert [trace.name for trace in view.deletion.data] == ["3 most attributed events", "3 random events"]
    top, random_ = (trace.y[0] for trace in view.deletion.data)
    assert top > random_  # the attributions point at the events that matter
    assert view.completeness.data[0].type == "histogram"
    other = pm.update_faithfulness("20000101-000000-000000", shop)
    assert "model in use" in _text(other.table)


def test_segments_under_k_are_counted_and_hidden(pm, shop, meta):
    groups = meta["metrics"]["segments"]["groups"]
    sizes = {name: max(v["users"] for v in per_model.values()) for name, per_model in groups.items()}
    view = pm.update_evaluation(None, "hr@10", shop)
    shown = [label.rsplit(" (", 1)[0].lower() for label in view.segments.data[0].y] if view.segments.data else []
    assert sorted(shown) == sorted(name for name, n in sizes.items() if n >= shop.k_anonymity)
    hidden = sum(n < shop.k_anonymity for n in sizes.values())
    assert (f"{hidden} segment" in view.segment_note) == (hidden > 0)
    assert "Hit rate@10" in view.segment_note
    assert sum(label.endswith("(served)") for label in view.bars.data[0].y) == 1


def test_importance_and_dependence_come_from_the_saved_global_shap(pm, shop):
    saved = global_importance(shop.models_dir)
    bars = pm.update_importance(None, "feature", pm.ALL_SEGMENTS, shop)
    expected = saved.by_feature()["label"].head(15).tolist()
    assert list(bars.data[0].y) == expected
    top = saved.by_feature()["feature"].iloc[0]
    plot = pm.update_dependence(None, top, None, shop)
    rows = sum(point[1] for point in plot.data[0].customdata)  # the bins hold every row with a value
    assert rows + int(saved.dependence(top)["value"].isna().sum()) == len(saved.rows)


def test_the_importance_title_names_the_segment_picked(pm, shop):
    from dashboard.model_insight import importance_segments

    saved = global_importance(shop.models_dir)
    assert "overall" in pm.update_importance(None, "feature", pm.ALL_SEGMENTS, shop).layout.title.text
    shown, _ = importance_segments(saved.rows, shop.k_anonymity)
    assert shown, "the saved sample has no segment of k customers to pick"
    title = pm.update_importance(None, "feature", shown[0], shop).layout.title.text
    assert f"for the {shown[0]} segment" in title and "overall" not in title


def test_analysts_see_no_customer_id_anywhere_on_the_page(pm, shop):
    body = pm.update_version(None, shop).body
    figures = [pm.update_importance(None, by, None, shop) for by in ("feature", "group")]
    top = global_importance(shop.models_dir).by_feature()["feature"].iloc[0]
    figures.append(pm.update_dependence(None, top, None, shop))
    evaluation = pm.update_evaluation(None, None, shop)
    checks = pm.update_faithfulness(None, shop)
    rendered = json.dumps([body, *figures, evaluation.bars, evaluation.segments, *checks],
                          cls=plotly.utils.PlotlyJSONEncoder)
    assert not PSEUDONYM.search(rendered)


def test_a_large_k_hides_every_aggregate(pm, shop):
    strict = replace(shop, k_anonymity=10**6)
    body = pm.update_version(None, strict).body
    assert "hidden for privacy" in _text(_find(body, "mo-eval-hidden"))
    assert "hidden for privacy" in _text(_find(body, "mo-importance-problem"))
    with pytest.raises(Exception, match="hidden for privacy"):
        pm.update_importance(None, "feature", None, strict)


def test_an_older_version_without_global_shap_says_so(pm, shop):
    current = registry.load_current(shop.models_dir).path
    older = current.parent / "20000101-000000-000000"
    shutil.copytree(current, older)
    try:
        for name in (SUMMARY_FILE, ROWS_FILE):
            (older / name).unlink()
        figure = pm.update_importance(older.name, "feature", None, shop)
        assert "no global importance saved" in figure.layout.annotations[0].text.lower()
        assert "20000101-000000-000000" in [o["value"] for o in _find(pm.build_layout(shop), "mo-version").options]
    finally:
        shutil.rmtree(older)


def test_a_forged_version_name_is_refused(pm, shop):
    figure = pm.update_importance("../../..", "feature", None, shop)
    assert "is not in" in figure.layout.annotations[0].text
    with pytest.raises(Exception, match="is not in"):
        pm.update_version("../versions/../..", shop)


def test_without_a_model_the_page_says_how_to_train(pm, tmp_path):
    page = pm.build_layout(Settings(models_dir=tmp_path / "none"))
    assert "cli.py train" in _text(_find(page, "mo-problem"))
