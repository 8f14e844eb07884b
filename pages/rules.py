"""Rules (analysts, admins): the shop's merchandising rules. Pin an item to a position, boost or
bury items by item, category or brand, exclude them; for everyone or some countries and segments;
for a time window. Applied after the ranker wherever lists are served (:mod:`workflows.merchandising`).

The page lists the rules in force (the grid), adds one through a form (the target with suggestions
from the catalogue), previews what a save would change before anything is saved (how many
customers' lists change, and a few side by side: :mod:`workflows.rules_preview`), saves a new
version of the rule set in the signed-in user's name, removes a rule or brings an old version back
(each a new version: nothing is ever overwritten), and shows the history of versions, who and when.
Every save is recorded in the audit log before it is written (``rules_change``); a save the log
cannot record does not happen, and one built on a version someone else replaced meanwhile is refused.

Thin like every page: the layout, and callbacks whose bodies (:func:`rules_listing`,
:func:`preview_draft`, :func:`save_draft`, :func:`remove`, :func:`restore`, :func:`target_options`)
take plain values, so tests call them without a browser.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, NamedTuple

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, dcc, html

from analytics.rule_set import RuleSet
from analytics.rules_store import load_rules, rules_folder, versions
from dashboard.theme import PRIMARY
from errors import RecsightError
from pages import _rules_views as rv
from pages._parts import card, current_settings, field, guarded, page, refused_page, sentence
from service import access, audit
from settings import Settings
from workflows import rules_editing, rules_preview
from workflows.merchandising import utc_now
from workflows.recommenders import recommender_for

__all__ = ["layout", "build_layout", "rules_listing", "preview_draft", "save_draft", "remove", "restore",
           "target_options", "RulesView", "Recorder"]

dash.register_page(__name__, path="/rules", name="Rules", title="Rules · Recsight", order=40)

log = logging.getLogger(__name__)

Recorder = rules_editing.Record  # (detail) -> None: the audit row of a save


class RulesView(NamedTuple):
    """What a change leaves on the page: its message, the grid's rows, the history, the pickers'
    options and the version the page now edits."""

    status: Any
    rows: list[dict[str, Any]]
    history: Any
    remove_options: list[dict[str, str]]
    restore_options: list[dict[str, Any]]
    version: int


# --------------------------------------------------------------------------- layout


def layout(**_query: str) -> Any:
    """Dash calls this per visit; the page checks the role itself too."""
    return refused_page(__name__) or build_layout(current_settings())


def build_layout(settings: Settings) -> Any:
    """The rules in force, the form, the preview area and the history."""
    listing = rules_listing(settings)
    try:
        countries = rules_editing.countries(recommender_for(settings))
    except RecsightError:
        countries = []
    return page(
        "Rules",
        "Merchandising rules, applied after the model wherever lists are shown: pin, boost, bury or exclude "
        "items. Preview a rule's effect before saving; every save is a new version, recorded in the audit log.",
        dcc.Store(id="rl-version", data=listing.version),
        html.Div(id="rl-status", children=listing.status),
        card("Rules in force", "In order: of two pins on one position the first wins; the history below has "
             "every version",
             rv.grid(listing.rows), footer=html.Div(className="rs-filters", children=[
                 field("Remove a rule", "rl-remove-pick", dcc.Dropdown(id="rl-remove-pick",
                                                                       options=listing.remove_options)),
                 html.Div(className="rs-field", children=[
                     html.Span("A new version without it", className="rs-field-label"),
                     dbc.Button("Remove", id="rl-remove", color="danger", outline=True, size="sm", n_clicks=0)]),
             ])),
        card("Add a rule", "Preview shows how many customers' lists change, and how, before anything is saved",
             rv.form(countries)),
        dcc.Loading(html.Div(id="rl-preview-body"), type="dot", color=PRIMARY, delay_show=150),
        card("History", "Every saved version: who saved it, when, and what changed", html.Div(id="rl-history-box",
             children=listing.history), footer=html.Div(className="rs-filters", children=[
                 field("Bring back", "rl-restore-pick", dcc.Dropdown(id="rl-restore-pick",
                                                                     options=listing.restore_options)),
                 html.Div(className="rs-field", children=[
                     html.Span("As a new version", className="rs-field-label"),
                     dbc.Button("Restore", id="rl-restore", color="light", size="sm", className="rs-preset",
                                n_clicks=0)]),
             ])),
    )


# --------------------------------------------------------------------------- callback bodies


def rules_listing(settings: Settings, status: Any = None) -> RulesView:
    """The rules in force and the history (or why they cannot be read)."""
    folder = rules_folder(settings.db_path)
    try:
        rules, history = load_rules(folder), versions(folder)
    except RecsightError as exc:
        return RulesView(_alert(str(exc), "danger", "rl-problem"), [], rv.history_view([]), [], [], -1)
    return RulesView(status, rv.rule_rows(rules, utc_now()), rv.history_view(history), rv.remove_options(rules),
                     rv.restore_options(history), rules.version or 0)


def preview_draft(values: dict[str, Any], version: Any, settings: Settings, *, now: datetime | None = None) -> Any:
    """The preview of the rules in force plus the form's rule (at its start when that is later)."""
    now = now or utc_now()
    current = _current(settings, version)
    recommender = recommender_for(settings)
    rule = rules_editing.rule_from_form(values, _author() or "preview", current, now)
    _check_catalogue(recommender, rule)
    at = rule.start if rule.start is not None and rule.start > now else now
    result = rules_preview.preview(recommender, current.with_rule(rule), base=current, at=at)
    return rv.preview_view(result, at if at != now else None)


def save_draft(values: dict[str, Any], version: Any, settings: Settings, *, author: str | None = None,
               record: Recorder | None = None, now: datetime | None = None) -> RulesView:
    """Save the rules in force plus the form's rule as a new version, audited; the page afterwards."""
    def run(author: str, record: Recorder) -> str:
        current = _current(settings, version)
        rule = rules_editing.rule_from_form(values, author, current, now)
        _check_catalogue(recommender_for(settings), rule)
        saved = rules_editing.add_rule(settings.db_path, rule, author, expected=current.version or 0, record=record)
        return f"Saved rule '{rule.name}' as rule set v{saved.version}"

    return _change(settings, run, author, record)


def remove(rule_id: Any, version: Any, settings: Settings, *, author: str | None = None,
           record: Recorder | None = None) -> RulesView:
    """Remove the picked rule (a new version without it), audited."""
    def run(author: str, record: Recorder) -> str:
        if not isinstance(rule_id, str) or not rule_id:
            raise RecsightError("pick the rule to remove")
        saved = rules_editing.remove_rule(settings.db_path, rule_id, author, expected=_version(version), record=record)
        return f"Removed the rule: rule set v{saved.version} is in force"

    return _change(settings, run, author, record)


def restore(old: Any, version: Any, settings: Settings, *, author: str | None = None,
            record: Recorder | None = None) -> RulesView:
    """Bring an old version's rules back as a new version, audited."""
    def run(author: str, record: Recorder) -> str:
        if not isinstance(old, int) or isinstance(old, bool):
            raise RecsightError("pick the version to bring back")
        saved = rules_editing.restore_version(settings.db_path, old, author, expected=_version(version), record=record)
        return f"The rules of v{old} are back, as rule set v{saved.version}"

    return _change(settings, run, author, record)


def target_options(target_type: Any, typed: Any, settings: Settings) -> list[Any]:
    """The catalogue's suggestions for the target box (a datalist's options)."""
    if not isinstance(target_type, str) or not isinstance(typed, (str, type(None))):
        return []
    found = rules_editing.suggestions(recommender_for(settings), target_type, (typed or "")[:100])
    return [html.Option(value=s.value, label=s.label) for s in found]


# --------------------------------------------------------------------------- helpers


def _change(settings: Settings, run: Any, author: str | None, record: Recorder | None) -> RulesView:
    """Run one change in the signed-in user's name with its audit row; the page afterwards, with
    the outcome (or the refusal, each problem on its own line)."""
    author = author or _author()
    if record is None:
        def record(detail: str) -> None:
            access.record_action(audit.RULES_CHANGE, detail=detail)
    try:
        if not author:
            raise RecsightError("nobody is signed in")
        status = _alert(run(author, record), "success", "rl-saved")
    except RecsightError as exc:
        lines = getattr(exc, "problems", None) or [str(exc)]
        status = dbc.Alert(html.Ul([html.Li(sentence(line)) for line in lines], className="mb-0"), color="danger",
                           className="rs-alert", id="rl-refused")
    return rules_listing(settings, status)


def _current(settings: Settings, version: Any) -> RuleSet:
    current = load_rules(rules_folder(settings.db_path))
    if (current.version or 0) != _version(version):
        raise RecsightError(f"the rules changed since you opened them (now v{current.version}): reload the page")
    return current


def _version(version: Any) -> int:
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise RecsightError("the page lost track of the rule set's version: reload the page")
    return version


def _check_catalogue(recommender: Any, rule: Any) -> None:
    found = rules_editing.catalogue_problems(recommender, rule)
    if found:
        raise RecsightError(found[0])


def _author() -> str | None:
    user = access.current_user()
    return user.name if user is not None else None


def _alert(message: str, color: str, alert_id: str) -> dbc.Alert:
    return dbc.Alert(sentence(message), color=color, className="rs-alert", id=alert_id)


# --------------------------------------------------------------------------- wiring

_FORM_STATES = [State(component, "value") for component in rv.FORM_FIELDS]
_CHANGE_OUTPUTS = [Output("rl-status", "children"), Output("rl-grid", "rowData"), Output("rl-history-box", "children"),
                   Output("rl-remove-pick", "options"), Output("rl-restore-pick", "options"),
                   Output("rl-version", "data")]


def _form(states: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(rv.FORM_FIELDS.values(), states))


@callback(Output("rl-preview-body", "children"), Input("rl-preview", "n_clicks"), State("rl-version", "data"),
          *_FORM_STATES, prevent_initial_call=True)
def _on_preview(clicks: int | None, version: Any, *states: Any) -> Any:
    if not clicks:
        raise dash.exceptions.PreventUpdate
    settings = current_settings()
    return guarded("rules page: preview", lambda: preview_draft(_form(states), version, settings),
                   lambda message: _alert(message, "warning", "rl-preview-problem"))


@callback(*_CHANGE_OUTPUTS, Input("rl-save", "n_clicks"), Input("rl-remove", "n_clicks"),
          Input("rl-restore", "n_clicks"), State("rl-version", "data"), State("rl-remove-pick", "value"),
          State("rl-restore-pick", "value"), *_FORM_STATES, prevent_initial_call=True)
def _on_change(_save: int | None, _remove: int | None, _restore: int | None, version: Any, rule_id: Any, old: Any,
               *states: Any) -> tuple[Any, ...]:
    trigger = dash.ctx.triggered_id
    if not any(entry.get("value") for entry in dash.ctx.triggered or []):
        raise dash.exceptions.PreventUpdate
    settings = current_settings()

    def run() -> tuple[Any, ...]:
        if trigger == "rl-save":
            view = save_draft(_form(states), version, settings)
        elif trigger == "rl-remove":
            view = remove(rule_id, version, settings)
        else:
            view = restore(old, version, settings)
        return tuple(view)

    return guarded("rules page: change", run, lambda message: (_alert(message, "danger", "rl-refused"),
                                                               *([dash.no_update] * 5)))


@callback(Output("rl-target-list", "children"), Input("rl-target-type", "value"), Input("rl-target", "value"))
def _on_target(target_type: Any, typed: Any) -> list[Any]:
    settings = current_settings()
    return guarded("rules page: suggestions", lambda: target_options(target_type, typed, settings), lambda _: [])
