"""The customer page's "Search as this customer": search the catalogue with the customer on the
page, see the results ranked for them with a reason each, and open Why? on any of them.

The section sits outside the result area the live tick rebuilds, so results an agent is reading
stay while the customer's list refreshes; they are cleared when another customer is looked up.
Each search is one audit row (an explanation view of the customer). The components are the
search page's (:mod:`pages._search_views`); the work is :func:`workflows.search.search_payload`.
"""

from __future__ import annotations

import json
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, callback, ctx, dcc, html
from dash.exceptions import PreventUpdate

from dashboard.theme import PRIMARY
from errors import RecsightError
from pages._parts import current_settings, field, guarded
from pages._search_views import results_column, why_view
from service import access, audit, customer_state
from service.openapi import MAX_QUERY_LENGTH
from settings import Settings
from workflows.recommenders import recommender_for
from workflows.search import search_payload

__all__ = ["section", "search_as", "register", "WHY", "K"]

WHY = "cu-search-why"  # pattern-matching id type of the results' Why? buttons on this page
K = 10


def section() -> html.Div:
    """The section: hidden until a customer is on the page."""
    return html.Div(id="cu-search-section", hidden=True, className="rs-customer-search", children=[
        html.Div(className="rs-section-head", children=[
            html.H2("Search as this customer", className="rs-section-title")]),
        html.Div(className="rs-filters rs-search-form", children=[
            field("Search for", "cu-search-q", dcc.Input(id="cu-search-q", type="text", maxLength=MAX_QUERY_LENGTH,
                                                         placeholder="what the customer is looking for",
                                                         className="form-control", n_submit=0)),
            html.Div(className="rs-field", children=[
                html.Span("\u00a0", className="rs-field-label"),
                dbc.Button("Search", id="cu-search-go", color="primary", n_clicks=0),
            ]),
        ]),
        dcc.Loading(html.Div(id="cu-search-results"), type="dot", color=PRIMARY),
        dcc.Store(id="cu-search-data"),
    ])


def search_as(customer: dict[str, Any] | None, query: str | None, settings: Settings,
              record: Any = access.record_action) -> tuple[Any, str]:
    """The results for ``query`` ranked for the customer on the page, and the data Why? reads."""
    if not customer or not customer.get("user_id"):
        raise RecsightError("look a customer up first")
    if not query or not query.strip():
        raise RecsightError("type a word or two to search for")
    user_id = customer["user_id"]
    record(audit.EXPLANATION_VIEW, customer=user_id,
           detail=f"search as this customer ({len(query)} characters), explained")
    payload = search_payload(recommender_for(settings), query, user_id, K, explain=True)
    heading = f"Results for “{payload['query'][:60]}”" + ("" if payload["personalised"] else
                                                         " (no history yet: as anonymous)")
    view = results_column("as-customer", heading, payload, None, why_type=WHY)
    return view, json.dumps({"user_id": user_id, "payload": payload}, default=float)


def _on_customer(customer: dict[str, Any] | None, data: str | None) -> tuple[bool, Any, Any]:
    """Show the section for a customer; clear results that were another customer's."""
    if not customer:
        return True, [], None
    kept = json.loads(data) if data else None
    if kept is not None and kept.get("user_id") == customer.get("user_id"):
        return False, dash.no_update, dash.no_update  # a live refresh of the same customer: keep them
    return False, [], None


def _on_search(_clicks: int | None, _submit: int | None, query: str | None,
               customer: dict[str, Any] | None) -> tuple[Any, Any]:
    if not ctx.triggered_id:
        raise PreventUpdate
    settings = current_settings()
    return guarded("customer lookup: search as this customer",
                   lambda: search_as(customer_state.verified(customer), query, settings),
                   lambda message: (dbc.Alert(message, color="warning", id="cu-search-problem"), None))


def _on_why(clicks: list[int | None], data: str | None) -> tuple[bool, Any, Any]:
    if not isinstance(ctx.triggered_id, dict) or not any(clicks):
        raise PreventUpdate
    item_id = ctx.triggered_id["item"]

    def run() -> tuple[bool, Any, Any]:
        payload = (json.loads(data) if data else {}).get("payload") or {}
        item = next((i for i in payload.get("items", []) if i["item_id"] == item_id), None)
        if item is None:
            raise RecsightError("search again: this result is no longer on the page")
        title, body = why_view(item, bool(payload.get("personalised")))
        return True, title, body

    return guarded("customer lookup: search why", run,
                   lambda message: (True, "Why this result?", dbc.Alert(message, color="warning")))


def register() -> None:
    """Hand the section's callbacks to Dash (``pages/user.py`` calls this, like its other callbacks)."""
    callback(Output("cu-search-section", "hidden"), Output("cu-search-results", "children", allow_duplicate=True),
             Output("cu-search-data", "data", allow_duplicate=True),
             Input("cu-customer", "data"), State("cu-search-data", "data"),
             prevent_initial_call=True)(_on_customer)
    callback(Output("cu-search-results", "children"), Output("cu-search-data", "data"),
             Input("cu-search-go", "n_clicks"), Input("cu-search-q", "n_submit"),
             State("cu-search-q", "value"), State("cu-customer", "data"),
             prevent_initial_call=True)(_on_search)
    callback(Output("cu-why-modal", "is_open", allow_duplicate=True),
             Output("cu-why-title", "children", allow_duplicate=True),
             Output("cu-why-body", "children", allow_duplicate=True),
             Input({"type": WHY, "side": ALL, "item": ALL}, "n_clicks"), State("cu-search-data", "data"),
             prevent_initial_call=True)(_on_why)
