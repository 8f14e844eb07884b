"""The page for an unknown address: says so and links back, instead of Dash's bare heading."""

from __future__ import annotations

from typing import Any

import dash
from dash import dcc

from pages._parts import page

dash.register_page(__name__, path="/not-found-404", name="Page not found", title="Not found · Recsight", nav=False)


def layout(**_query: str) -> Any:
    return page("Page not found", "There is no page at this address.",
                dcc.Link("Back to the shop overview", href=dash.get_relative_path("/"), className="rs-back-link"),
                title_id="nf-title")
