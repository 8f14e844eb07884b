"""The customer page's "What if…" card: take some of the customer's past items out of their history,
or add one event, and see the list re-scored, each move told in words an agent can read out.

The work is :func:`workflows.whatif.what_if` (which checks the input itself, whatever the page
offered); this module is the card, its callback body (:func:`whatif`, one audit row per what-if,
written before the result is shown) and the thin wiring. ``pages/user.py`` registers it with the
page's other callbacks, so it gets the page's roles.
"""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, callback, ctx, dcc, html
from dash.exceptions import PreventUpdate

from analytics import schema as s
from dashboard.customer_view import EVENT_LABELS
from dashboard.theme import PRIMARY
from errors import RecsightError
from pages._parts import current_settings, field, guarded, sentence
from service import access, audit, customer_state
from settings import Settings
from workflows.lookup import Found
from workflows.whatif import ADDABLE, MAX_REMOVED, WhatIf, what_if

__all__ = ["PAST_ITEMS_SHOWN", "section", "past_item_options", "whatif", "whatif_view", "register"]

PAST_ITEMS_SHOWN = 30  # the customer's most recent distinct items offered for removal


def past_item_options(frame: pd.DataFrame, limit: int = PAST_ITEMS_SHOWN) -> list[dict[str, str]]:
    """The customer's most recent distinct past items (newest first) from the lookup's timeline,
    labelled with the title and what they last did with it."""
    options: dict[str, dict[str, str]] = {}
    if frame is None or frame.empty:
        return []
    rows = zip(frame[s.ITEM_ID].tolist(), frame[s.TITLE].tolist(), frame[s.EVENT_TYPE].tolist())
    for item_id, title, event_type in reversed(list(rows)):  # the timeline is oldest first
        if item_id in options or len(options) >= limit:
            continue
        done = EVENT_LABELS.get(event_type, str(event_type)).lower()
        options[item_id] = {"label": f"{title or item_id} ({done})", "value": str(item_id)}
    return list(options.values())


def section(found: Found) -> list[Any]:
    """The card's head, form and empty result area, below "Compare two items"."""
    options = past_item_options(found.timeline)
    return [
        html.Div(className="rs-section-head", children=[html.H2("What if…", className="rs-section-title")]),
        html.P(f"Take up to {MAX_REMOVED} of the customer's past items out of their history, or add one event, "
               "and see how the list would change.", className="rs-table-note"),
        html.Div(className="rs-filters rs-whatif", children=[
            field("Without their events on", "cu-whatif-remove", dcc.Dropdown(
                id="cu-whatif-remove", options=options, multi=True, value=[],
                placeholder="Pick past items" if options else "No past items")),
            html.Div(className="rs-field", children=[
                html.Label("Add an event on item", className="rs-field-label", htmlFor="cu-whatif-add-item"),
                dbc.Input(id="cu-whatif-add-item", type="text", placeholder="Item id (optional)", maxLength=200,
                          autoComplete="off", size="sm"),
            ]),
            html.Div(className="rs-field rs-whatif-type", children=[
                html.Label("Event", className="rs-field-label", htmlFor="cu-whatif-add-type"),
                dcc.Dropdown(id="cu-whatif-add-type", clearable=False, value=s.CART,
                             options=[{"label": EVENT_LABELS.get(e, e), "value": e} for e in ADDABLE]),
            ]),
            html.Div(className="rs-field", children=[
                html.Span("Re-score the list", className="rs-field-label"),
                dbc.Button("Re-score", id="cu-whatif-go", color="primary", size="sm", n_clicks=0),
            ]),
        ]),
        dcc.Loading(html.Div(id="cu-whatif-body"), type="dot", color=PRIMARY),
    ]


def whatif(customer: dict[str, Any] | None, remove: Any, add_item: Any, add_type: Any, settings: Settings,
           record: Any = access.record_action) -> Any:
    """The re-scored list's moves for the looked-up customer. One audit row, after the input was
    accepted and before anything is shown."""
    user_id = (customer or {}).get("user_id")
    if not isinstance(user_id, str) or not user_id:
        raise RecsightError("look a customer up first")
    if remove is not None and not isinstance(remove, list):
        raise RecsightError("pick the past items to take out from the list")
    typed = add_item.strip() if isinstance(add_item, str) else ""
    add = (typed, add_type if isinstance(add_type, str) else "") if typed else None
    found = what_if(settings, user_id, customer.get("version"), remove or [], add)
    change = [f"without {len(found.removed)} past items ({', '.join(found.removed)})"] if found.removed else []
    if found.added:
        change.append(f"with a {found.added[1]} of {found.added[0]}")
    record(audit.EXPLANATION_VIEW, customer=user_id, detail=f"what-if: {' and '.join(change)}; "
                                                            f"{len(found.moves)} moves")
    return whatif_view(found)


def whatif_view(found: WhatIf) -> html.Div:
    """The moves, one sentence each (entered, left, then moved), or "nothing would change"."""
    if not found.moves:
        return html.Div(id="cu-whatif-result", children=html.P(
            f"Nothing would change: the top {found.k} would stay as it is.", id="cu-whatif-none",
            className="rs-table-note"))
    return html.Div(id="cu-whatif-result", className="rs-whatif-result", children=[
        html.Div(f"With this change, {len(found.moves)} item{'s' if len(found.moves) != 1 else ''} of the top "
                 f"{found.k} would move:", className="rs-field-label"),
        html.Ul([html.Li(move.sentence, className=f"rs-change rs-change-{move.kind}", id=f"cu-whatif-move-{n}")
                 for n, move in enumerate(found.moves)], id="cu-whatif-moves", className="rs-reasons"),
    ])


def _on_whatif(_clicks: int | None, remove: Any, add_item: Any, add_type: Any, customer: dict[str, Any] | None) -> Any:
    if not ctx.triggered_id or not _clicks:
        raise PreventUpdate
    settings = current_settings()
    return guarded("customer lookup: what-if",
                   lambda: whatif(customer_state.verified(customer), remove, add_item, add_type, settings),
                   lambda message: dbc.Alert(sentence(message), color="warning", className="rs-alert",
                                             id="cu-whatif-problem"))


def register() -> None:
    """Hand the callback to Dash (``pages/user.py`` calls it with the page's other callbacks)."""
    callback(Output("cu-whatif-body", "children"), Input("cu-whatif-go", "n_clicks"),
             State("cu-whatif-remove", "value"), State("cu-whatif-add-item", "value"),
             State("cu-whatif-add-type", "value"), State("cu-customer", "data"),
             prevent_initial_call=True)(_on_whatif)
