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

Every table and figure has a "Download CSV" (:mod:`pages._downloads`): what draws it also stores
the table it is drawn from (:mod:`dashboard.figure_tables`), and the download hands out exactly
that, to the page's roles only. The static pieces (KPI cards, grid, checks, metadata) are
:mod:`pages._model_views`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NamedTuple

import dash
import dash_bootstrap_components as dbc
import plotly.graph_objects as go
from dash import Input, Output, callback, dcc, html

from dashboard import figure_tables as tables
from dashboard import model_insight as mi
from dashboard.csv_tables import ShownTable
from dashboard.explanation_figures import dependence_plot, global_importance_bars
from dashboard.faithfulness_figures import completeness_table, deletion_table
from dashboard.theme import PRIMARY, empty_figure
from errors import RecsightError
from explain.global_view import GlobalImportance
from pages import _downloads as dl
from pages import _model_views as views
from pages._downloads import Shown, csv_control, store_data, store_output
from pages._parts import card, current_settings, graph, guarded, page, refused_page, sentence, toggle
from settings import Settings
from workflows import insight
from workflows.insight import FAITHFULNESS_CUSTOMERS

__all__ = [
    "layout", "build_layout", "update_version", "update_evaluation", "update_importance", "update_dependence",
    "update_faithfulness", "evaluation_view", "importance_view", "dependence_view", "faithfulness_view",
    "VersionView", "EvaluationView", "EvaluationTables", "FaithfulnessView", "FaithfulnessTables", "ALL_SEGMENTS",
    "CSV",
]

dash.register_page(__name__, path="/model", name="Model insight", title="Model insight · Recsight", order=20)

log = logging.getLogger(__name__)

ALL_SEGMENTS = "all"
IMPORTANCE_BARS = 15  # features (or groups) the importance figure and its CSV show
CSV = dl.DownloadPage(__name__, "model", "mo", frozenset(
    {"evaluation", "models", "segments", "importance", "dependence", "checks", "deletion", "completeness",
     "metadata", "comparisons"}))


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


class EvaluationTables(NamedTuple):
    """The tables behind :class:`EvaluationView`'s figures (their CSVs); None where hidden."""

    bars: ShownTable | None
    segments: ShownTable | None


class FaithfulnessTables(NamedTuple):
    """The tables behind :class:`FaithfulnessView` (their CSVs); None where nothing is shown."""

    checks: ShownTable | None
    deletion: ShownTable | None
    completeness: ShownTable | None


# Why a segment here may be missing from the overview's filter (both hide groups under k people).
_SEGMENTS_WHEN = ("The test customers' segments when this model was trained, each of at least {k} of them; the "
                  "overview lists today's segments of at least {k} customers, so the two lists can differ.")


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
        views.kpis(table, metric, metrics) if hidden is None else _problem(hidden, "mo-eval-hidden"),
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
             views.grid(table, meta, csv_control(CSV, "comparisons", tables.comparisons_table(metrics)))
             if hidden is None else html.Div(hidden, className="rs-empty"),
             footer=html.Div([html.Div(line) for line in mi.metric_help()], className="rs-table-note mt-2"),
             tools=csv_control(CSV, "evaluation", None if hidden else tables.evaluation_grid_table(table))),
        dbc.Row(className="g-3 mt-1", children=[
            dbc.Col(card("Models side by side", None, graph("mo-bars", 300), tools=csv_control(CSV, "models")), lg=5),
            dbc.Col(card(f"By {(metrics.get('segments') or {}).get('by', 'segment')}", _SEGMENTS_WHEN.format(k=k),
                         [graph("mo-segments", 320), html.Div(id="mo-segment-note", className="rs-table-note")],
                         tools=csv_control(CSV, "segments")), lg=7),
        ]),
        html.Div(className="rs-section-head",
                 children=[html.H2("What drives the scores", className="rs-section-title")]),
        _importance_section(importance, importance_problem, k),
        html.Div(className="rs-section-head", children=[
            html.H2("Are the explanations faithful?", className="rs-section-title")]),
        _faithfulness_section(version),
        html.Div(className="rs-section-head", children=[html.H2("What is deployed", className="rs-section-title")]),
        _metadata_card(mi.metadata_rows(meta, version or insight.current_version(settings))),
    ]))


def update_evaluation(version: str | None, metric: str | None, settings: Settings) -> EvaluationView:
    """The chosen metric per model (bars) and per segment (heat map; small segments suppressed)."""
    return evaluation_view(version, metric, settings)[0]


def evaluation_view(version: str | None, metric: str | None,
                    settings: Settings) -> tuple[EvaluationView, EvaluationTables]:
    """:func:`update_evaluation`'s view and the tables its figures are drawn from."""
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
    shown = EvaluationTables(None if hidden or metric not in table.columns else tables.metric_bars_table(table, metric),
                             tables.segment_metric_table(segments))
    return EvaluationView(bars, mi.segment_figure(segments, 320), note), shown


def update_importance(version: str | None, by: str | None, segment: str | None, settings: Settings) -> go.Figure:
    """Global importance bars: mean |SHAP| per feature or group, overall or for one segment."""
    return importance_view(version, by, segment, settings).figure


def importance_view(version: str | None, by: str | None, segment: str | None, settings: Settings) -> Shown:
    """:func:`update_importance`'s bars and the table they are drawn from (the top bars only)."""
    importance, problem = _importance(settings, version)
    if importance is None:
        return Shown(empty_figure(problem or "No importance to show", 420), None)
    chosen = None if segment in (None, "", ALL_SEGMENTS) else segment
    frame = mi.importance_view(importance, by or "feature", chosen, settings.k_anonymity)
    shown = tables.top_importance(frame[["label", "mean_abs_shap"]], IMPORTANCE_BARS)
    return Shown(global_importance_bars(shown, top=IMPORTANCE_BARS, segment=chosen),
                 tables.importance_table(shown, by or "feature"))


def update_dependence(version: str | None, feature: str | None, segment: str | None,
                      settings: Settings) -> go.Figure:
    """How one feature's value maps to its contribution, over the sampled lists: means over
    bins of at least k customers, never one customer's point."""
    return dependence_view(version, feature, segment, settings).figure


def dependence_view(version: str | None, feature: str | None, segment: str | None, settings: Settings) -> Shown:
    """:func:`update_dependence`'s plot and the bins it is drawn from."""
    importance, problem = _importance(settings, version)
    if importance is None:
        return Shown(empty_figure(problem or "No importance to show", 380), None)
    if not feature:
        return Shown(empty_figure("Choose a feature", 380), None)
    chosen = None if segment in (None, "", ALL_SEGMENTS) else segment
    bins, missing = mi.dependence_view(importance, feature, chosen, settings.k_anonymity)
    label = mi.feature_label(feature)
    return Shown(dependence_plot(bins, label, missing, settings.k_anonymity), tables.dependence_table(bins, label))


def update_faithfulness(version: str | None, settings: Settings) -> FaithfulnessView:
    """The faithfulness checks on a sample of customers, run against the model in use (cached
    per model version for this process). Aggregates only, over at least k customers."""
    return faithfulness_view(version, settings)[0]


def faithfulness_view(version: str | None, settings: Settings) -> tuple[FaithfulnessView, FaithfulnessTables]:
    """:func:`update_faithfulness`' view and the tables behind it (the checks, both figures)."""
    nothing = FaithfulnessTables(None, None, None)
    if version not in (None, insight.current_version(settings)):
        return _faithfulness_problem("The checks run against the model in use: choose that version to see them."), \
            nothing
    faith = insight.faithfulness_of(settings)
    if faith.customers < settings.k_anonymity:
        return _faithfulness_problem(f"Only {faith.customers} customers have enough history for the checks, fewer "
                                     f"than {settings.k_anonymity}: hidden for privacy."), nothing
    relative = sorted(faith.ig_relative)
    rows = [
        ("Customers · items checked", f"{faith.customers} · {faith.items}"),
        views.additivity_row(faith.shap_max_error, "their lists"),
        ("IG adds up (median · worst error)", "–" if not relative else
         f"{relative[len(relative) // 2]:.1e} · {relative[-1]:.1e}"),
    ]
    importance, _ = _importance(settings, version)
    if importance is not None:
        rows.insert(2, views.additivity_row(mi.shap_additivity(importance), "global sample"))
    share = faith.top_beats_random()
    if share is not None:
        rows.append(("Removing the top-3 events costs more than 3 random ones",
                     f"{share:.0%} of {len(faith.drops)} items"))
    view = FaithfulnessView(views.checks_table(rows), mi.deletion_figure(faith, 300),
                            mi.completeness_figure(faith, 300))
    return view, FaithfulnessTables(tables.pairs_table(("Check", "Result"), rows), deletion_table(faith),
                                    completeness_table(faith))


def _faithfulness_problem(message: str) -> FaithfulnessView:
    return FaithfulnessView(_problem(message, "mo-faithfulness-problem"), empty_figure(message, 300),
                            empty_figure(message, 300))


# --------------------------------------------------------------------------- global importance


def _importance(settings: Settings, version: str | None) -> tuple[GlobalImportance | None, str | None]:
    """The version's global SHAP sample (:func:`workflows.insight.importance_of`), or (None, why)."""
    try:
        return insight.importance_of(settings, version), None
    except RecsightError as exc:
        return None, sentence(str(exc))


# --------------------------------------------------------------------------- pieces


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
            dbc.Col(card("Global importance", note, graph("mo-importance", 460),
                         tools=csv_control(CSV, "importance")), lg=6),
            dbc.Col(card("Dependence", "Each point is a bin of recommended items from at least "
                                       f"{k} customers: the feature's mean value and what it "
                                       "added to the score on average", graph("mo-dependence", 460),
                         tools=csv_control(CSV, "dependence")), lg=6),
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
                         dcc.Loading(html.Div(id="mo-faithfulness", children=views.checks_table([])),
                                     type="dot", color=PRIMARY), tools=csv_control(CSV, "checks")), lg=4),
            dbc.Col(card("Deletion test", "Attention-score drop when 3 events are taken out",
                         graph("mo-deletion", 300), tools=csv_control(CSV, "deletion")), lg=4),
            dbc.Col(card("Attribution completeness", "Integrated Gradients' error per recommended item",
                         graph("mo-completeness", 300), tools=csv_control(CSV, "completeness")), lg=4),
        ]),
    ])


def _metadata_card(rows: list[tuple[str, str]]) -> dbc.Card:
    return card("Model metadata", None, views.metadata(rows),
                tools=csv_control(CSV, "metadata", tables.pairs_table(("Field", "Value"), rows)))


def _problem(message: str, problem_id: str = "mo-problem") -> dbc.Alert:
    return dbc.Alert(sentence(message), color="warning", className="rs-alert", id=problem_id)


# --------------------------------------------------------------------------- wiring


@callback(Output("mo-body", "children"), Input("mo-version", "value"))
def _on_version(version: str | None) -> Any:
    settings = current_settings()
    return guarded("model page: version", lambda: update_version(version, settings).body, _problem)


@callback(Output("mo-bars", "figure"), Output("mo-segments", "figure"), Output("mo-segment-note", "children"),
          store_output(CSV, "models"), store_output(CSV, "segments"),
          Input("mo-metric", "value"), Input("mo-version", "value"))
def _on_metric(metric: str | None, version: str | None) -> tuple[Any, ...]:
    settings = current_settings()

    def run() -> tuple[Any, ...]:
        view, shown = evaluation_view(version, metric, settings)
        return (*view, *(store_data(table) for table in shown))

    return guarded("model page: evaluation", run,
                   lambda message: (empty_figure(message, 300), empty_figure(message, 320), message, None, None))


@callback(Output("mo-importance", "figure"), store_output(CSV, "importance"),
          Input("mo-importance-by", "value"), Input("mo-segment", "value"), Input("mo-version", "value"))
def _on_importance(by: str | None, segment: str | None, version: str | None) -> tuple[Any, ...]:
    settings = current_settings()
    return _shown("model page: importance", lambda: importance_view(version, by, segment, settings))


@callback(Output("mo-dependence", "figure"), store_output(CSV, "dependence"),
          Input("mo-feature", "value"), Input("mo-segment", "value"), Input("mo-version", "value"))
def _on_dependence(feature: str | None, segment: str | None, version: str | None) -> tuple[Any, ...]:
    settings = current_settings()
    return _shown("model page: dependence", lambda: dependence_view(version, feature, segment, settings))


@callback(Output("mo-faithfulness", "children"), Output("mo-deletion", "figure"), Output("mo-completeness", "figure"),
          store_output(CSV, "checks"), store_output(CSV, "deletion"), store_output(CSV, "completeness"),
          Input("mo-faithfulness-version", "data"))
def _on_faithfulness(version: str | None) -> tuple[Any, ...]:
    settings = current_settings()

    def run() -> tuple[Any, ...]:
        view, shown = faithfulness_view(version, settings)
        return (*view, *(store_data(table) for table in shown))

    return guarded("model page: faithfulness", run,
                   lambda message: (*_faithfulness_problem(message), None, None, None))


@callback(*dl.download_callback_args(CSV), prevent_initial_call=True)
def _on_download(clicks: int | None, store: Any) -> tuple[Any, str]:
    return dl.download(CSV, dl.triggered_table(), clicks, store)


dl.enable_buttons(CSV)


def _shown(where: str, build: Callable[[], Shown]) -> tuple[Any, ...]:
    """A figure callback's outputs: the figure and its stored table (none for a problem)."""
    def run() -> tuple[Any, ...]:
        view = build()
        return view.figure, store_data(view.table)

    return guarded(where, run, lambda message: (empty_figure(message, 460), None))


def _model_page(*children: Any) -> html.Div:
    return page("Model insight", "How well the recommender does against simple baselines, what drives its scores, "
                "and whether its explanations are faithful. Aggregates only.", *children)
