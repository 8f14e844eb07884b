"""Experiments (analysts, admins): A/B tests between model versions and rule sets, and what they show.

The list of experiments with their status (scheduled, running, stopped: from the clock), a form
to create one (variants from the models folder's versions and the saved rule sets, their shares,
start and stop), a button to stop the selected one, and its analysis: customers per variant, the
primary metric with 95 % intervals, the lift against the control with its interval, the sample
ratio check, CUPED, the sample size the test needs and a plain-language verdict that will not
name a winner the data cannot support; under it, every version of the definition (who changed
what, when).

Thin like every page: the layout and three callbacks whose bodies are :func:`update_analysis`,
:func:`change_experiments` (create or stop) and the downloads; definitions and analysis come from
:mod:`workflows.experiments`, figures and tables from :mod:`dashboard.experiments_view`. Every
change is audited (``experiment_change``) before it is written; a change the log cannot record
is not made. One experiment runs at a time (:mod:`analytics.experiments_store` says why).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, dcc, html

from analytics.experiments_store import RUNNING, Experiment
from dashboard import experiments_view as xv
from dashboard.csv_tables import ShownTable
from dashboard.theme import PRIMARY
from errors import RecsightError
from pages import _downloads as dl
from pages._downloads import csv_control, store_data, store_output
from pages._experiments_form import FORM_FIELDS, VARIANT_ROWS, form, read_form, variant_ids
from pages._parts import card, current_settings, graph, guarded, page, refused_page, sentence
from service import access, audit
from settings import Settings
from workflows import experiments as work

__all__ = ["layout", "build_layout", "update_analysis", "change_experiments", "AnalysisView", "ChangeView", "CSV"]

dash.register_page(__name__, path="/experiments", name="Experiments", title="Experiments · Recsight", order=35)

CSV = dl.DownloadPage(__name__, "experiments", "ex", frozenset({"experiments", "variants", "history"}))
_CUPED_ON = "on"


class AnalysisView(NamedTuple):
    """What :func:`update_analysis` puts on the page, and the tables behind it (their CSVs)."""

    body: Any
    variants: ShownTable | None
    history: ShownTable | None


class ChangeView(NamedTuple):
    """What :func:`change_experiments` puts on the page after a create or stop (or its refusal)."""

    status: Any
    listing: Any
    options: list[dict[str, str]]
    selected: str | None
    table: ShownTable | None


# --------------------------------------------------------------------------- layout


def layout(**_query: str) -> Any:
    """Dash calls this per visit; the page checks the role itself too."""
    return refused_page(__name__) or build_layout(current_settings())


def build_layout(settings: Settings, now: datetime | None = None) -> Any:
    """The list, the selected experiment's analysis (filled by :func:`update_analysis`), the form."""
    now = now or _now()
    try:
        experiments, found = work.list_experiments(settings), work.choices(settings)
    except RecsightError as exc:
        return _experiments_page(_alert(str(exc), "warning", "ex-problem"))
    table = xv.experiments_table(experiments, now)
    return _experiments_page(
        card("Experiments", "Newest start first. One experiment runs at a time; its customers are split by "
             "pseudonym, so each always sees the same variant.",
             html.Div(id="ex-list", children=_listing(table)), footer=csv_control(CSV, "experiments", table)),
        html.Div(className="rs-filters", children=[
            _field("Experiment", "ex-select", dcc.Dropdown(id="ex-select", options=_options(experiments),
                                                           value=_default(experiments, now), clearable=False)),
            _field("Smallest effect worth finding", "ex-mde", dcc.Dropdown(
                id="ex-mde", value=work.DEFAULT_MDE, clearable=False, searchable=False,
                options=[{"label": f"{m:.0%} relative", "value": m} for m in work.MDE_CHOICES])),
            _field("Variance reduction", "ex-cuped", dbc.Checklist(
                id="ex-cuped", value=[_CUPED_ON], switch=True,
                options=[{"label": "CUPED (pre-period behaviour)", "value": _CUPED_ON}])),
            html.Div(className="rs-field", children=[
                dbc.Button("Stop experiment", id="ex-stop", color="danger", outline=True, size="sm", n_clicks=0),
            ]),
        ]),
        html.Div(id="ex-change-status"),
        dcc.Loading(html.Div(id="ex-analysis"), type="dot", color=PRIMARY, delay_show=150),
        card("New experiment", "Variants serve a model version and a rule set; the first is the control. "
             "Shares in percent add up to 100. Times in UTC.", form(found)),
    )


def _experiments_page(*children: Any) -> html.Div:
    return page("Experiments", "A/B tests between model versions and rule sets: who sees which, and whether the "
                "difference is real. Aggregates only.", *children)


def _field(label: str, target: str, control: Any) -> html.Div:
    return html.Div(className="rs-field rs-field-grow", children=[
        html.Label(label, className="rs-field-label", htmlFor=target), control])


def _options(experiments: list[Experiment]) -> list[dict[str, str]]:
    return [{"label": f"{e.name} ({e.id})", "value": e.id} for e in experiments]


def _default(experiments: list[Experiment], now: datetime) -> str | None:
    """The running experiment, else the newest."""
    running = [e.id for e in experiments if e.status(now) == RUNNING]
    return (running or [e.id for e in experiments] or [None])[0]


def _listing(table: ShownTable) -> Any:
    if not table.rows:
        return html.Div("No experiment yet: create one below.", className="rs-empty", id="ex-none")
    return _table(table.columns, [["–" if c is None else str(c) for c in row] for row in table.rows], "ex-table")


def _table(headers: tuple[str, ...], rows: list[list[str]], table_id: str) -> Any:
    head = html.Thead(html.Tr([html.Th(h) for h in headers]))
    body = html.Tbody([html.Tr([html.Td(cell) for cell in row]) for row in rows])
    return html.Div(dbc.Table([head, body], className="rs-table", size="sm", borderless=True, hover=True,
                              id=table_id), style={"overflowX": "auto"})


def _alert(message: str, color: str, alert_id: str) -> dbc.Alert:
    return dbc.Alert(sentence(message), color=color, className="rs-alert", id=alert_id)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# --------------------------------------------------------------------------- callback bodies


def update_analysis(experiment_id: str | None, mde: Any, cuped: Any, settings: Settings) -> AnalysisView:
    """The selected experiment: what it tests, its figures, notes and verdict, and its history."""
    if not experiment_id:
        return AnalysisView(None, None, None)
    mde = float(mde) if mde in work.MDE_CHOICES else work.DEFAULT_MDE
    report = work.analyse_experiment(settings, experiment_id, mde=mde, cuped=_CUPED_ON in (cuped or []))
    e = report.experiment
    history = xv.history_table(work.experiment_history(settings, experiment_id))
    variants = xv.variant_table(report, settings.currency)
    arms = html.Ul([html.Li(f"{v.name}{' (control)' if v is e.control else ''}: {v.share:.0%} of customers, "
                            f"{xv.serves(v)}") for v in e.variants])
    body = html.Div(id="ex-body", children=[
        card(f"{e.name} · {xv.STATUS_LABELS[report.status]}", f"{xv.METRIC_LABELS[e.metric]} is the primary "
             f"metric. Hypothesis: {e.hypothesis}", arms),
        html.Ul(id="ex-notes", className="rs-notes", children=[html.Li(line) for line in xv.notes(report)]),
        dbc.Row(className="g-3", children=[
            dbc.Col(card(xv.METRIC_LABELS[e.metric], "Per variant, with its 95 % interval",
                         graph("ex-metric-figure", 300, xv.metric_figure(report, settings.currency))), lg=6),
            dbc.Col(card("Lift against the control", "An interval crossing the dotted line is no evidence",
                         graph("ex-lift-figure", 240, xv.lift_figure(report))), lg=6),
        ]),
        card("Variants", "Customers shown each variant and its figures (CSV: the same rows, unrounded)",
             _table(variants.columns, xv.display_rows(variants, e.metric, settings.currency), "ex-variants")
             if variants is not None else html.Div(report.message, className="rs-empty"),
             footer=csv_control(CSV, "variants", variants)),
        card("History", "Every version of this experiment: who changed what, when",
             _table(history.columns, [["–" if c is None else str(c) for c in row] for row in history.rows],
                    "ex-history"), footer=csv_control(CSV, "history", history)),
    ])
    return AnalysisView(body, variants, history)


def change_experiments(action: str, selected: str | None, values: dict[str, Any], variant_rows: list[tuple],
                       settings: Settings, *, author: str | None = None, record: work.Recorder | None = None,
                       now: datetime | None = None) -> ChangeView:
    """Create the experiment the form describes (``action`` "create") or stop the selected one
    ("stop"): audited, then written; the list afterwards, or the refusal in one line."""
    now = now or _now()
    user = access.current_user()
    author = author or (user.name if user is not None else None)
    if record is None:
        def record(detail: str) -> None:
            access.record_action(audit.EXPERIMENT_CHANGE, detail=detail)
    status, chosen = None, selected
    try:
        if not author:
            raise RecsightError("nobody is signed in")
        if action == "create":
            saved = work.save_experiment(settings, read_form(values, variant_rows, now), author, record, now=now)
            status, chosen = _alert(f"Experiment {saved.id} created: {xv.STATUS_LABELS[saved.status(now)].lower()}",
                                    "success", "ex-change-done"), saved.id
        elif action == "stop":
            if not selected:
                raise RecsightError("choose an experiment to stop")
            was = work.experiment_history(settings, selected)[-1].status(now)
            stopped = work.stop_experiment(settings, selected, author, record, now=now)
            status = _alert(f"Experiment {stopped.id} stopped at {stopped.stop:%Y-%m-%d %H:%M} UTC" if was == RUNNING
                            else f"Experiment {stopped.id} cancelled before it started", "success", "ex-change-done")
    except RecsightError as exc:
        status = _alert(str(exc), "danger", "ex-change-refused")
    experiments = work.list_experiments(settings)
    table = xv.experiments_table(experiments, now)
    return ChangeView(status, _listing(table), _options(experiments), chosen, table)


# --------------------------------------------------------------------------- wiring


_FORM_STATES = [State(name, "value") for name in FORM_FIELDS] + [
    State(part, "value") for row in range(VARIANT_ROWS) for part in variant_ids(row)]


@callback(Output("ex-analysis", "children"),
          Input("ex-select", "value"), Input("ex-mde", "value"), Input("ex-cuped", "value"))
def _on_select(experiment_id: str | None, mde: Any, cuped: Any) -> Any:
    """The analysis; its tables' CSV stores come inside it, filled (they exist only once it is drawn)."""
    settings = current_settings()
    return guarded("experiments page", lambda: update_analysis(experiment_id, mde, cuped, settings).body,
                   lambda message: _alert(message, "warning", "ex-problem"))


@callback(Output("ex-change-status", "children"), Output("ex-list", "children"), Output("ex-select", "options"),
          Output("ex-select", "value"), store_output(CSV, "experiments"),
          Input("ex-create", "n_clicks"), Input("ex-stop", "n_clicks"), State("ex-select", "value"), *_FORM_STATES,
          prevent_initial_call=True)
def _on_change(_create: int | None, _stop: int | None, selected: str | None, *states: Any) -> tuple[Any, ...]:
    settings = current_settings()
    action = "create" if dash.ctx.triggered_id == "ex-create" else "stop"
    values = dict(zip(FORM_FIELDS, states[:len(FORM_FIELDS)]))
    rest = states[len(FORM_FIELDS):]
    rows = [tuple(rest[i:i + 4]) for i in range(0, len(rest), 4)]

    def run() -> tuple[Any, ...]:
        view = change_experiments(action, selected, values, rows, settings)
        return view.status, view.listing, view.options, view.selected, store_data(view.table)

    return guarded("experiments page", run, lambda message: (_alert(message, "danger", "ex-change-refused"),
                                                             dash.no_update, dash.no_update, dash.no_update,
                                                             dash.no_update))


@callback(*dl.download_callback_args(CSV), prevent_initial_call=True)
def _on_download(clicks: int | None, store: Any) -> tuple[Any, str]:
    return dl.download(CSV, dl.triggered_table(), clicks, store)


dl.enable_buttons(CSV)
