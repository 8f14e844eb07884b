"""Customer lookup (support): find one customer, see who they are to the shop, what we recommend
and why, and export it as a report.

This module registers the page and draws its frame (the search bar and an empty result area).
The rest is split by concern: the callbacks and their bodies are :mod:`pages._user_callbacks`
(registered below, each time Dash loads this page), the components they build are
:mod:`pages._user_views`, and the work (finding the customer, the list, the explanations and
their per-process cache) is :mod:`workflows.lookup`.

Finding a customer is exact and server-side (a shop id is hashed with the shop's secret, a
pseudonym is taken as is): nothing ever lists every customer. ``/user/<id>`` deep-links to a
lookup; after a typed lookup the address bar shows ``/user/<pseudonym>`` (never the typed shop
id), so the link can be shared without revealing it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html

from analytics.customers import MAX_ID_LENGTH
from dashboard.theme import PRIMARY
from pages import _user_callbacks
from pages._parts import page

__all__ = ["layout", "build_layout"]

dash.register_page(__name__, path="/user", path_template="/user/<user_id>", name="Customer lookup",
                   title="Customer lookup · Recsight", order=10,
                   callback_modules=(_user_callbacks.__name__,))  # its callbacks get this page's roles
_user_callbacks.register()


def layout(user_id: str | None = None, **_query: str) -> Any:
    """Dash calls this per visit; ``user_id`` comes from a ``/user/<id>`` deep link."""
    return build_layout(unquote(user_id) if user_id else None)


def build_layout(user_id: str | None = None) -> Any:
    """The search bar and an empty result area; a deep link pre-fills the search and looks up."""
    typed = (user_id or "")[: MAX_ID_LENGTH]
    return page(
        "Customer lookup",
        "Find one customer, see what we recommend to them and why, and export it as a report. "
        "Every lookup is recorded in the audit log.",
        html.Div(className="rs-filters rs-lookup-bar", children=[
            html.Div(className="rs-field rs-lookup-field", children=[
                html.Label("Customer", className="rs-field-label", htmlFor="cu-search"),
                dbc.InputGroup([
                    dbc.Input(id="cu-search", type="search", value=typed, maxLength=MAX_ID_LENGTH,
                              placeholder="Shop customer id or pseudonym (c_…)", autoFocus=True,
                              autoComplete="off", n_submit=0),
                    dbc.Button("Look up", id="cu-go", color="primary", n_clicks=0),
                ]),
                html.Div("Type the id from the shop's systems; it is hashed before the search, "
                         "and only the pseudonym is kept.", className="rs-field-hint"),
            ]),
        ]),
        dcc.Store(id="cu-initial", data=typed or None),
        dcc.Store(id="cu-customer"),
        dcc.Loading(html.Div(id="cu-result", children=_intro()), type="dot", color=PRIMARY, delay_show=150,
                    overlay_style={"visibility": "visible", "opacity": 0.5},
                    target_components={"cu-result": "children"}),  # not while the reasons load inside
        dbc.Modal(id="cu-why-modal", size="xl", scrollable=True, is_open=False, children=[
            dbc.ModalHeader(dbc.ModalTitle(id="cu-why-title")),
            dbc.ModalBody(dcc.Loading(html.Div(id="cu-why-body"), type="dot", color=PRIMARY)),
        ]),
        dcc.Download(id="cu-download"),
        html.Div(id="cu-url", hidden=True),
    )


def _intro() -> Any:
    return html.Div(className="rs-empty-state", id="cu-intro", children=[
        html.Div("Look a customer up", className="rs-empty-title"),
        html.P("Their profile, their behaviour over time and their top recommendations, each with the "
               "reasons behind it, appear here."),
    ])
