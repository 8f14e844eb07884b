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

Deep links name customers by pseudonym only: the server redirects a page load of
``/user/<shop id>`` to the pseudonym (``service.deeplinks``), this layout shows the pseudonym for
one reached inside the app, and the address-bar script replaces such an entry rather than keep
it in the history. A deep link looks up once: Back and Forward to an entry already looked up
show the search filled in, and only a click looks up (and audits) again. A link on another
site opens the page the same way, without looking up.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html

from analytics.customers import MAX_ID_LENGTH
from dashboard.theme import PRIMARY
from pages import _user_callbacks, _user_preview, _user_search, _user_whatif
from pages._parts import link_pseudonym, page, refused_page
from service.deeplinks import opened_from_elsewhere

__all__ = ["layout", "build_layout"]

dash.register_page(__name__, path="/user", path_template="/user/<user_id>", name="Customer lookup",
                   title="Customer lookup · Recsight", order=10,
                   callback_modules=(_user_callbacks.__name__, _user_search.__name__,
                                     _user_preview.__name__, _user_whatif.__name__))  # they get its roles
_user_callbacks.register()
_user_search.register()
_user_preview.register()
_user_whatif.register()


def layout(user_id: str | None = None, **_query: str) -> Any:
    """Dash calls this per visit; ``user_id`` comes from a ``/user/<id>`` deep link. The page
    checks the role itself too."""
    return refused_page(__name__) or build_layout(unquote(user_id) if user_id else None,
                                                  from_elsewhere=opened_from_elsewhere())


def build_layout(user_id: str | None = None, from_elsewhere: bool = False) -> Any:
    """The search bar and an empty result area; a deep link pre-fills the search with the
    customer's pseudonym (never a shop id) and looks up, unless another site's link opened it."""
    typed = link_pseudonym(user_id)
    return page(
        "Customer lookup",
        "Find one customer, see what we recommend to them and why, and export it as a report. "
        "Every lookup is recorded in the audit log.",
        html.Div(className="rs-filters rs-lookup-bar", children=[
            html.Div(className="rs-field rs-lookup-field", children=[
                html.Label("Customer", className="rs-field-label", htmlFor="cu-search"),
                dbc.InputGroup([
                    # one character more than an id may have: a longer paste reaches the server,
                    # which says so, instead of being cut to a valid-looking id without a word
                    dbc.Input(id="cu-search", type="search", value=typed, maxLength=MAX_ID_LENGTH + 1,
                              placeholder="Shop customer id or pseudonym (c_…)", autoFocus=True,
                              autoComplete="off", n_submit=0),
                    dbc.Button("Look up", id="cu-go", color="primary", n_clicks=0),
                ]),
                html.Div("Type the id from the shop's systems; it is hashed before the search, "
                         "and only the pseudonym is kept.", className="rs-field-hint"),
            ]),
        ]),
        # cu-link: the deep link's customer; the page's script copies it to cu-initial (which
        # looks up) unless Back or Forward returned to an entry already looked up
        dcc.Store(id="cu-link", data=None if from_elsewhere else typed or None),
        dcc.Store(id="cu-initial"),
        dcc.Store(id="cu-customer"),
        dcc.Loading(html.Div(id="cu-result", children=_intro(from_elsewhere and bool(typed))), type="dot",
                    color=PRIMARY, delay_show=150,
                    overlay_style={"visibility": "visible", "opacity": 0.5},
                    target_components={"cu-result": "children"}),  # not while the reasons load inside
        _user_search.section(),  # outside the result area: a live refresh leaves the results alone
        dbc.Modal(id="cu-why-modal", size="xl", scrollable=True, is_open=False, children=[
            dbc.ModalHeader(dbc.ModalTitle(id="cu-why-title")),
            dbc.ModalBody(dcc.Loading(html.Div(id="cu-why-body"), type="dot", color=PRIMARY)),
        ]),
        _user_preview.dialog(),
        dcc.Download(id="cu-download"),
        html.Div(id="cu-url", hidden=True),
    )


def _intro(from_elsewhere: bool = False) -> Any:
    return html.Div(className="rs-empty-state", id="cu-intro", children=[
        html.Div("Look a customer up", className="rs-empty-title"),
        html.P("A link on another site opened this customer: press Look up to see them (the lookup is "
               "recorded in your name).", id="cu-from-elsewhere") if from_elsewhere else None,
        html.P("Their profile, their behaviour over time and their top recommendations, each with the "
               "reasons behind it, appear here."),
    ])
