"""Search (support and admin): search the catalogue as a shopper would, anonymously and as one
customer side by side, and see why each result ranks where it does.

Anonymous results are what the query alone says; with a customer named (shop id or pseudonym,
resolved on the server like the lookup page, counted against the same lookup limit and audited
as an explanation view), the second column ranks the same query for that customer and says how
far their history moved each result. ``/search?user=<pseudonym>`` opens the page with the
customer filled in: the customer page's "Search as this customer" link. Thin like every page:
the work is :func:`workflows.search.page_search`, the components :mod:`pages._search_views`.
"""

from __future__ import annotations

import json
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, callback, ctx, dcc, html
from dash.exceptions import PreventUpdate

from analytics.customers import MAX_ID_LENGTH
from dashboard.theme import PRIMARY
from errors import RecsightError
from pages._parts import current_settings, field, guarded, link_pseudonym, page, refused_page
from pages._search_views import WHY, results_column, why_view
from service import access, audit, throttle
from service.openapi import MAX_QUERY_LENGTH
from settings import Settings
from workflows.search import page_search

__all__ = ["layout", "build_layout", "run_search", "open_why", "K"]

dash.register_page(__name__, path="/search", name="Search", title="Search · Recsight", order=15)

K = 10


def layout(user: str | None = None, q: str | None = None, **_query: str) -> Any:
    """Dash calls this per visit; ``user`` (a pseudonym) and ``q`` come from the address."""
    return refused_page(__name__) or build_layout(user, q)


def build_layout(user: str | None = None, q: str | None = None) -> Any:
    """The query and customer fields, the results area and the Why? dialog."""
    customer = link_pseudonym(user)
    return page(
        "Search",
        "Search the catalogue as a shopper would: anonymously, and as one customer beside it, with the reasons "
        "for every result.",
        html.Div(className="rs-filters rs-search-form", children=[
            field("Search for", "se-query", dcc.Input(id="se-query", type="text", value=q or "", debounce=False,
                                                      maxLength=MAX_QUERY_LENGTH, placeholder="e.g. capacitor",
                                                      className="form-control")),
            field("As customer (optional)", "se-customer",
                  dcc.Input(id="se-customer", type="text", value=customer, maxLength=MAX_ID_LENGTH,
                            placeholder="shop id or pseudonym", className="form-control")),
            html.Div(className="rs-field", children=[
                html.Span("\u00a0", className="rs-field-label"),
                dbc.Button("Search", id="se-go", color="primary", n_clicks=0),
            ]),
        ]),
        dcc.Loading(html.Div(id="se-result"), type="circle", color=PRIMARY),
        dcc.Store(id="se-data"),
        dbc.Modal(id="se-why-modal", size="xl", scrollable=True, is_open=False, children=[
            dbc.ModalHeader(dbc.ModalTitle(id="se-why-title")),
            dbc.ModalBody(html.Div(id="se-why-body")),
        ]),
    )


def run_search(query: str | None, typed: str | None, settings: Settings,
               record: Any = access.record_action) -> tuple[Any, Any]:
    """The results area and the data the Why? dialog reads, for one query (and customer)."""
    if not query or not query.strip():
        raise RecsightError("type a word or two to search for")
    typed = (typed or "").strip() or None
    if typed is not None:
        wait = throttle.lookup_wait(settings, "search page")
        if wait is not None:
            raise RecsightError(f"too many lookups in a short time: try again in {wait} seconds")

    def audited(customer: str | None, detail: str) -> None:
        action = audit.SEARCH if typed is None else audit.EXPLANATION_VIEW if customer else audit.CUSTOMER_LOOKUP
        record(action, customer=customer, detail=detail)

    found = page_search(settings, query, typed, K, audited)
    anonymous_ranks = {item["item_id"]: item["rank"] for item in found.anonymous["items"]}
    columns = [dbc.Col(results_column("anonymous", "Anonymous: the query alone", found.anonymous, None), lg=6)]
    if found.personalised is not None:
        heading = (f"As customer {found.personalised['user_id']}" if found.personalised["personalised"]
                   else f"As customer {found.personalised['user_id']} (no history yet: as anonymous)")
        columns.append(dbc.Col(results_column("personalised", heading, found.personalised, anonymous_ranks), lg=6))
    elif found.customer_problem:
        columns.append(dbc.Col(dbc.Alert(found.customer_problem, color="warning", id="se-customer-problem"), lg=6))
    data = {"anonymous": found.anonymous, "personalised": found.personalised}
    return dbc.Row(columns, className="g-4 mt-2"), json.dumps(data, default=float)


def open_why(side: str, item_id: str, data: str | None) -> tuple[bool, Any, Any]:
    """The Why? dialog of one result, from the data the search stored (no second search)."""
    payload = (json.loads(data) if data else {}).get(side)
    item = next((i for i in (payload or {}).get("items", []) if i["item_id"] == item_id), None)
    if item is None:
        raise RecsightError("search again: this result is no longer on the page")
    title, body = why_view(item, bool(payload["personalised"]))
    return True, title, body


def _on_search(_clicks: int | None, _submit: int | None, query: str | None, typed: str | None) -> tuple[Any, Any]:
    if not ctx.triggered_id:
        raise PreventUpdate
    settings = current_settings()
    return guarded("search page", lambda: run_search(query, typed, settings),
                   lambda message: (dbc.Alert(message, color="warning", id="se-problem"), None))


def _on_why(clicks: list[int | None], data: str | None) -> tuple[bool, Any, Any]:
    if not isinstance(ctx.triggered_id, dict) or not any(clicks):
        raise PreventUpdate
    side, item_id = ctx.triggered_id["side"], ctx.triggered_id["item"]
    return guarded("search page: why", lambda: open_why(side, item_id, data),
                   lambda message: (True, "Why this result?", dbc.Alert(message, color="warning")))


callback(Output("se-result", "children"), Output("se-data", "data"),
         Input("se-go", "n_clicks"), Input("se-query", "n_submit"),
         State("se-query", "value"), State("se-customer", "value"),
         prevent_initial_call=True)(_on_search)
callback(Output("se-why-modal", "is_open"), Output("se-why-title", "children"), Output("se-why-body", "children"),
         Input({"type": WHY, "side": ALL, "item": ALL}, "n_clicks"), State("se-data", "data"),
         prevent_initial_call=True)(_on_why)
