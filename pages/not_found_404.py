"""The page for an unknown address: says so and links back, instead of Dash's bare heading."""

from __future__ import annotations

from typing import Any

import dash
from dash import dcc, html

dash.register_page(__name__, path="/not-found-404", name="Page not found", title="Not found · Recsight", nav=False)


def layout(**_query: str) -> Any:
    return html.Div(className="rs-page", children=[
        html.Header(className="rs-page-head", children=[
            html.H1("Page not found", className="rs-page-title", id="nf-title"),
            html.P("There is no page at this address.", className="rs-page-lead"),
        ]),
        dcc.Link("Back to the shop overview", href=dash.get_relative_path("/"), className="rs-back-link"),
    ])
