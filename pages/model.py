"""Model insight (analysts): how the recommender does against the baselines, overall and per
segment; what drives its scores across customers; whether its explanations are faithful; and
what exactly is deployed (data fingerprint, training date, package versions).

Thin like every page: the layout, and callbacks whose bodies are the module-level ``update_*``
functions (tests call them directly). The numbers come from the stored model version
(:mod:`dashboard.model_insight` reads its ``metadata.json`` and draws it; :mod:`workflows.insight`
gives its saved global SHAP sample and runs the faithfulness checks once per process), so drawing
the page loads no model and reads no customer. Aggregates only:
no customer id appears here, and segments of fewer than ``settings.k_anonymity`` customers are
suppressed everywhere (evaluation, importance, dependence); the dependence plot shows means
over bins of at least k customers, never one customer's point.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import plotly.graph_objects as go
from dash import Input, Output, callback, dcc, html

from dashboard import model_insight as mi
from dashboard.explanation_figures import dependence_plot, global_importance_bars
from dashboard.theme import PRIMARY, empty_figure
from errors import RecsightError
from explain.global_view import GlobalImportance
from pages._parts import card, current_settings, graph, guarded, page, refused_page, sentence, toggle
from settings import Settings
from workflows import insight
from workflows.insight import FAITHFULNESS_CUSTOMERS

__all__ = [
    "layout", "build_layout", "update_version", "update_evaluation", "update_importance", "update_dependence",
    "update_faithfulness", "VersionView", "EvaluationView", "FaithfulnessView", "ALL_SEGMENTS",
]

dash.register_page(__name__, path="/model", name="Model insight", title="Model insight · Recsight", order=20)

log = logging.getLogger(__name__)

ALL_SEGMENTS = "all"


class VersionView(NamedTuple):
    """What :func:`update_version` puts on the page for one model version."""

    body: Any


class FaithfulnessView(NamedTuple):
    """What :func:`update_faithfulness` shows: the checks' table and two figures."""

    table: Any
    deletion: go.Figure
    completeness: go.Figure


class EvaluationView(NamedTuple):
    """What :func:`update_evaluation` shows for the chosen metric."""

    bars: go.Figure
    segments: go.Figure
    segment_note: Any


# --------------------------------------------------------------------------- layout


def layout(**_query: str) -> Any:
    """Dash calls this per visit (query-string values arrive as keyword arguments, unused); the
    page checks the role itself too."""
    return refused_page(__name__) or build_layout(current_settings())


def build_layout(settings: Settings) -> Any:
    """The version picker and the page body (filled by :func:`update_version`)."""
    versions = mi.list_versions(settings.models_dir)
    if not versions:
        return _model_page(_problem(f"No trained model in {settings.models_dir}: run `python cli.py train` first."))
    options = [{"label": v.label, "value": v.name} for v in versions]
    return _model_page(
        html.Div(className="rs-filters", children=[
            html.Div(className="rs-field rs-field-grow rs-version-field", children=[
                html.Label("Model version", className="rs-field-label", htmlFor="mo-version"),
                dcc.Dropdown(id="mo-version", options=options, value=versions[0].name, clearable=False,
                             searchable=False),
                html.Div("Evaluated at training time on the held-out test window.", className="rs-field-hint"),
            ]),
        ]),
        dcc.Loading(html.Div(id="mo-body"), type="dot", color=PRIMARY, delay_show=150,
                    target_components={"mo-body": "children"}),  # the figures inside have their own
    )


# --------------------------------------------------------------------------- callback bodies


def update_version(version: str | None, settings: Settings) -> VersionView:
    """The page body for one model version: KPIs, evaluation, importance, faithfulness, metadata."""
    meta = mi.read_metadata(settings.models_dir, version)
    k = settings.k_anonymity
    table, hidden = mi.evaluation_table(meta, k)
    metrics = meta["metrics"]
    metric = f"ndcg@{int(metrics.get('k', 10))}"
    importance, importance_problem = _importance(settings, version)
    return VersionView(html.Div([
        _kpis(table, metric, metrics) if hidden is None else _problem(hidden, "mo-eval-hidden"),
        html.Div(className="rs-section-head", children=[
            html.H2("Against the baselines", className="rs-section-title"),
            html.Div(className="rs-inline-field", children=[
                html.Span("Metric", className="rs-field-label"),
                dcc.Dropdown(id="mo-metric", options=mi.metric_choices(meta), value=metric, clearable=False,
                             searchable=False, className="rs-metric-dropdown"),
            ]),
        ]),
        card("Evaluation", f"{int(metrics.get('users', 0)):,} test customers · protocol {metrics.get('protocol')} "
                           f"· target {metrics.get('target')} · dataset {metrics.get('dataset', meta.get('dataset'))}",
             _grid(table) if hidden is None else html.Div(hidden, className="rs-empty"),
             footer=html.Div([html.Div(line) for line in mi.metric_help()], className="rs-table-note mt-2")),
        dbc.Row(className="g-3 mt-1", children=[
            dbc.Col(card("Models side by side", None, graph("mo-bars", 300)), lg=5),
            dbc.Col(card(f"By {(metrics.get('segments') or {}).get('by', 'segment')}", None,
                         [graph("mo-segments", 320), html.Div(id="mo-segment-note", className="rs-table-note")]),
                    lg=7),
        ]),
        html.Div(className="rs-section-head",
                 children=[html.H2("What drives the scores", className="rs-section-title")]),
        _importance_section(importance, importance_problem, k),
        html.Div(className="rs-section-head", children=[
            html.H2("Are the explanations faithful?", className="rs-section-title")]),
        _faithfulness_section(version),
        html.Div(className="rs-section-head", children=[html.H2("What is deployed", className="rs-section-title")]),
        card("Model metadata", None, _metadata(mi.metadata_rows(meta, version or insight.current_version(settings)))),
    ]))


def update_evaluation(version: str | None, metric: str | None, settings: Settings) -> EvaluationView:
    """The chosen metric per model (bars) and per segment (heat map; small segments suppressed)."""
    meta = mi.read_metadata(settings.models_dir, version)
    k = settings.k_anonymity
    table, hidden = mi.evaluation_table(meta, k)
    metric = metric or f"ndcg@{int(meta['metrics'].get('k', 10))}"
    bars = empty_figure(hidden, 300) if hidden else mi.evaluation_figure(table, metric, 300)
    segments = mi.segment_table(meta, k, metric)
    note = f"{mi.metric_label(metric)} per segment; test customers in brackets."
    if segments.suppressed:
        note += (f" {segments.suppressed} segment{'s' if segments.suppressed != 1 else ''} with fewer than "
                 f"{k} test customers hidden.")
    return EvaluationView(bars, mi.segment_figure(segments, 320), note)


def update_importance(version: str | None, by: str | None, segment: str | None, settings: Settings) -> go.Figure:
    """Global importance bars: mean |SHAP| per feature or group, overall or for one segment."""
    importance, problem = _importance(settings, version)
    if importance is None:
        return empty_figure(problem or "No importance to show", 420)
    chosen = None if segment in (None, "", ALL_SEGMENTS) else segment
    frame = mi.importance_view(importance, by or "feature", chosen, settings.k_anonymity)
    return global_importance_bars(frame[["label", "mean_abs_shap"]], top=15, segment=chosen)


def update_dependence(version: str | None, feature: str | None, segment: str | None,
                      settings: Settings) -> go.Figure:
    """How one feature's value maps to its contribution, over the sampled lists: means over
    bins of at least k customers, never one customer's point."""
    importance, problem = _importance(settings, version)
    if importance is None:
        return empty_figure(problem or "No importance to show", 380)
    if not feature:
        return empty_figure("Choose a feature", 380)
    chosen = None if segment in (None, "", ALL_SEGMENTS) else segment
    bins, missing = mi.dependence_view(importance, feature, chosen, settings.k_anonymity)
    return dependence_plot(bins, mi.feature_label(feature), missing, settings.k_anonymity)


def update_faithfulness(version: str | None, settings: Settings) -> FaithfulnessView:
    """The faithfulness checks on a sample of customers, run against the model in use (cached
    per model version for this process). Aggregates only, over at least k customers."""
    if version not in (None, insight.current_version(settings)):
        message = "The checks run against the model in use: choose that version to see them."
        return FaithfulnessView(_problem(message, "mo-faithfulness-problem"), empty_figure(message, 300),
                                empty_figure(message, 300))
    faith = insight.faithfulness_of(settings)
    if faith.customers < settings.k_anonymity:
        message = (f"Only {faith.customers} customers have enough history for the checks, fewer than "
                   f"{settings.k_anonymity}: hidden for privacy.")
        return FaithfulnessView(_problem(message, "mo-faithfulness-problem"), empty_figure(message, 300),
                                empty_figure(message, 300))
    relative = sorted(faith.ig_relative)
    rows = [
        ("Customers · items checked", f"{faith.customers} · {faith.items}"),
        _additivity_row(faith.shap_max_error, "their lists"),
        ("IG adds up (median · worst error)", "–" if not relative else
         f"{relative[len(relative) // 2]:.1e} · {relative[-1]:.1e}"),
    ]
    importance, _ = _importance(settings, version)
    if importance is not None:
        rows.insert(2, _additivity_row(mi.shap_additivity(importance), "global sample"))
    share = faith.top_beats_random()
    if share is not None:
        rows.append(("Removing the top-3 events costs more than 3 random ones",
                     f"{share:.0%} of {len(faith.drops)} items"))
    return FaithfulnessView(_checks_table(rows), mi.deletion_figure(faith, 300), mi.completeness_figure(faith, 300))


# --------------------------------------------------------------------------- global importance


def _importance(settings: Settings, version: str | None) -> tuple[GlobalImportance | None, str | None]:
    """The version's global SHAP sample (:func:`workflows.insight.importance_of`), or (None, why)."""
    try:
        return insight.importance_of(settings, version), None
    except RecsightError as exc:
        return None, sentence(str(exc))


# --------------------------------------------------------------------------- pieces


def _kpis(table: Any, metric: str, metrics: dict[str, Any]) -> html.Div:
    served = table[table["kind"] == "served"]
    baselines = table[table["kind"] == "baseline"]
    value = float(served[metric].iloc[0]) if not served.empty and served[metric].iloc[0] is not None else None
    best = baselines.loc[baselines[metric].idxmax()] if not baselines.empty and baselines[metric].notna().any() \
        else None
    lift = served["lift"].iloc[0] if not served.empty else None
    recall = (metrics.get("candidates") or {})
    deepest = max(recall, key=lambda key: int(key.split("@")[1]), default=None) if recall else None
    cards = [
        ("mo-kpi-served", f"Served model {mi.metric_label(metric)}", "—" if value is None else f"{value:.4f}",
         "hybrid: ranker with the attention signal"),
        ("mo-kpi-lift", "Against the best baseline",
         "—" if lift is None or lift != lift else f"{lift:+.0%}",
         "" if best is None else f"best baseline: {best['label']} ({float(best[metric]):.4f})"),
        ("mo-kpi-users", "Test customers", f"{int(metrics.get('users', 0)):,}", f"target: {metrics.get('target')}"),
        ("mo-kpi-recall", "Candidate recall", "—" if deepest is None else f"{float(recall[deepest]):.1%}",
         "" if deepest is None else f"targets among the first {deepest.split('@')[1]} candidates (ranker's ceiling)"),
    ]
    return html.Div(className="rs-kpis rs-kpis-4", children=[
        html.Div(className="rs-kpi", children=[
            html.Div(label, className="rs-kpi-label"),
            html.Div(shown, className="rs-kpi-value", id=kpi_id),
            html.Div(caption, className="rs-kpi-caption"),
        ]) for kpi_id, label, shown, caption in cards
    ])


def _grid(table: Any) -> dag.AgGrid:
    metric_columns = [c for c in table.columns if c not in ("model", "label", "kind", "lift")]
    columns = [{"field": "label", "headerName": "Model", "pinned": "left", "minWidth": 210}]
    columns += [{"field": c, "headerName": mi.metric_label(c), "type": "numericColumn", "minWidth": 118,
                 "valueFormatter": {"function": "params.value == null ? '–' : d3.format('.4f')(params.value)"}}
                for c in metric_columns]
    columns.append({"field": "lift", "headerName": "vs best baseline", "type": "numericColumn", "minWidth": 130,
                    "valueFormatter": {"function": "params.value == null || isNaN(params.value) ? '–' : "
                                                  "d3.format('+.0%')(params.value)"}})
    rows = table.astype(object).where(table.notna(), None).to_dict("records")
    return dag.AgGrid(
        id="mo-eval-grid", rowData=rows, columnDefs=columns,
        defaultColDef={"sortable": True, "resizable": True, "flex": 1},
        rowClassRules={"rs-row-served": "params.data.kind == 'served'",
                       "rs-row-baseline": "params.data.kind == 'baseline'"},
        dashGridOptions={"domLayout": "autoHeight", "animateRows": False, "suppressCellFocus": True},
        className="rs-grid", style={"width": "100%"},
    )


def _importance_section(importance: GlobalImportance | None, problem: str | None, k: int) -> Any:
    if importance is None:
        return _problem(problem or "No global importance for this version.", "mo-importance-problem")
    customers = int((importance.rows["rank"] == 1).sum())
    if customers < k:
        return _problem(f"The importance sample has {customers} customers, fewer than {k}: hidden for privacy.",
                        "mo-importance-problem")
    segments, suppressed = mi.importance_segments(importance.rows, k)
    options = [{"label": "All sampled customers", "value": ALL_SEGMENTS}]
    options += [{"label": name[:1].upper() + name[1:], "value": name} for name in segments]
    features = mi.feature_choices(importance)
    note = (f"Mean |SHAP| over the top {importance.k} items of {customers:,} sampled customers"
            f" (the lists customers see), by {importance.segment_by}.")
    if suppressed:
        note += f" {suppressed} segment{'s' if suppressed != 1 else ''} with fewer than {k} customers not listed."
    return html.Div([
        html.Div(className="rs-filters", children=[
            html.Div(className="rs-field", children=[
                html.Span("Show", className="rs-field-label"),
                toggle("mo-importance-by", {"feature": "Features", "group": "Feature groups"}, "feature"),
            ]),
            html.Div(className="rs-field rs-field-grow", children=[
                html.Label("Customers", className="rs-field-label", htmlFor="mo-segment"),
                dcc.Dropdown(id="mo-segment", options=options, value=ALL_SEGMENTS, clearable=False,
                             searchable=False),
            ]),
            html.Div(className="rs-field rs-field-grow rs-feature-field", children=[
                html.Label("Dependence plot feature", className="rs-field-label", htmlFor="mo-feature"),
                dcc.Dropdown(id="mo-feature", options=features, value=features[0]["value"] if features else None,
                             clearable=False),
            ]),
        ]),
        dbc.Row(className="g-3", children=[
            dbc.Col(card("Global importance", note, graph("mo-importance", 460)), lg=6),
            dbc.Col(card("Dependence", "Each point is a bin of recommended items from at least "
                                       f"{k} customers: the feature's mean value and what it "
                                       "added to the score on average", graph("mo-dependence", 460)), lg=6),
        ]),
    ])


def _faithfulness_section(version: str | None) -> Any:
    """The checks' table and figures (filled by :func:`update_faithfulness`, seconds of work)."""
    return html.Div([
        dcc.Store(id="mo-faithfulness-version", data=version),
        html.P("Each explanation should describe what the model really does: TreeSHAP contributions must add "
               "up to the score, Integrated Gradients to the attention network's score, and taking out the "
               "history events the attributions rank highest must lower that score more than taking out "
               "random ones.", className="rs-page-lead mb-2"),
        dbc.Row(className="g-3", children=[
            dbc.Col(card("Checks", f"On the lists of {FAITHFULNESS_CUSTOMERS} sampled customers",
                         dcc.Loading(html.Div(id="mo-faithfulness", children=_checks_table([])),
                                     type="dot", color=PRIMARY)), lg=4),
            dbc.Col(card("Deletion test", "Attention-score drop when 3 events are taken out",
                         graph("mo-deletion", 300)), lg=4),
            dbc.Col(card("Attribution completeness", "Integrated Gradients' error per recommended item",
                         graph("mo-completeness", 300)), lg=4),
        ]),
    ])


def _additivity_row(error: float, where: str) -> tuple[str, str]:
    return (f"SHAP adds up to the score ({where})", f"max error {error:.1e}")


def _checks_table(rows: list[tuple[str, str]]) -> Any:
    if not rows:
        return html.Div("Running the checks…", className="rs-empty")
    return html.Div([
        html.Table(className="table rs-table mb-1", children=[
            html.Tbody([html.Tr([html.Td(name), html.Td(value, className="text-end text-nowrap")])
                        for name, value in rows]),
        ]),
        html.Div("SHAP error: max |base + Σ contributions − score|. IG error: |Σ attributions − (score − "
                 "baseline score)| relative to the gap.", className="rs-table-note"),
    ])


def _metadata(rows: list[tuple[str, str]]) -> html.Dl:
    items = []
    for label, value in rows:
        items += [html.Dt(label), html.Dd(value, className="rs-mono" if label in ("Data fingerprint",
                                                                                  "Model version") else None)]
    return html.Dl(items, className="rs-metadata", id="mo-metadata")


def _problem(message: str, problem_id: str = "mo-problem") -> dbc.Alert:
    return dbc.Alert(sentence(message), color="warning", className="rs-alert", id=problem_id)


# --------------------------------------------------------------------------- wiring


@callback(Output("mo-body", "children"), Input("mo-version", "value"))
def _on_version(version: str | None) -> Any:
    settings = current_settings()
    return guarded("model page: version", lambda: update_version(version, settings).body, _problem)


@callback(Output("mo-bars", "figure"), Output("mo-segments", "figure"), Output("mo-segment-note", "children"),
          Input("mo-metric", "value"), Input("mo-version", "value"))
def _on_metric(metric: str | None, version: str | None) -> EvaluationView:
    settings = current_settings()
    return guarded("model page: evaluation", lambda: update_evaluation(version, metric, settings),
                    lambda message: EvaluationView(empty_figure(message, 300), empty_figure(message, 320), message))


@callback(Output("mo-importance", "figure"),
          Input("mo-importance-by", "value"), Input("mo-segment", "value"), Input("mo-version", "value"))
def _on_importance(by: str | None, segment: str | None, version: str | None) -> go.Figure:
    settings = current_settings()
    return guarded("model page: importance", lambda: update_importance(version, by, segment, settings),
                    lambda message: empty_figure(message, 460))


@callback(Output("mo-dependence", "figure"),
          Input("mo-feature", "value"), Input("mo-segment", "value"), Input("mo-version", "value"))
def _on_dependence(feature: str | None, segment: str | None, version: str | None) -> go.Figure:
    settings = current_settings()
    return guarded("model page: dependence", lambda: update_dependence(version, feature, segment, settings),
                    lambda message: empty_figure(message, 460))


@callback(Output("mo-faithfulness", "children"), Output("mo-deletion", "figure"), Output("mo-completeness", "figure"),
          Input("mo-faithfulness-version", "data"))
def _on_faithfulness(version: str | None) -> FaithfulnessView:
    settings = current_settings()
    return guarded("model page: faithfulness", lambda: update_faithfulness(version, settings),
                    lambda message: FaithfulnessView(_problem(message, "mo-faithfulness-problem"),
                                                     empty_figure(message, 300), empty_figure(message, 300)))


def _model_page(*children: Any) -> html.Div:
    return page("Model insight", "How well the recommender does against simple baselines, what drives its scores, "
                "and whether its explanations are faithful. Aggregates only.", *children)
