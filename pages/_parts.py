"""Pieces every page module shares: the page frame, cards, graphs and toggles, message wording,
the settings of the serving app, and the callback boundary.

One definition each, so every page looks and behaves alike (the browser tests find the same ids
and class names on each). The leading underscore keeps Dash's page scanner from registering this
module as a page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import dash
import dash_bootstrap_components as dbc
import flask
import plotly.graph_objects as go
from dash import dcc, html
from dash.exceptions import PreventUpdate

from analytics.customers import MAX_ID_LENGTH, clean_customer_ref, reference_pseudonym
from dashboard.theme import PRIMARY, empty_figure
from errors import RecsightError
from service import access
from settings import SETTINGS_KEY, Settings, load_settings

__all__ = [
    "UNEXPECTED", "GRAPH_CONFIG", "page", "card", "graph", "toggle", "field", "sentence", "capitalised", "guarded",
    "current_settings", "refused_page", "link_pseudonym",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

UNEXPECTED = "Something went wrong on the server; the error has been logged."
GRAPH_CONFIG: dict[str, Any] = {"displayModeBar": False, "responsive": True}


def current_settings() -> Settings:
    """The settings of the app serving the current request (the environment's outside one).

    Read from the Flask config (``settings.SETTINGS_KEY``, set by ``app.create_app``) rather than
    imported from ``app``: pages sit below the app shell and must not import it.
    """
    if flask.has_app_context():
        settings = flask.current_app.config.get(SETTINGS_KEY)
        if isinstance(settings, Settings):
            return settings
    return load_settings()


def link_pseudonym(typed: str | None) -> str:
    """The pseudonym a link's customer names ('' for none, or for text that is no customer id):
    pages name customers by pseudonym only, so a shop id in an address is hashed, never shown."""
    if not typed:
        return ""
    try:
        found = reference_pseudonym(clean_customer_ref(typed[:MAX_ID_LENGTH]), current_settings().secret)
    except RecsightError:
        return ""
    return found or ""


def refused_page(module: str) -> html.Div | None:
    """A page's own role check, for its ``layout`` to call first: None when the signed-in user
    may open the page registered by ``module``, else a short refusal to show instead.

    The guard already refuses the page (and the pages router rendering it) to other roles; this
    is the second line, so a hole in how a request is read can never render a page for a role
    the access rules keep out of it. A layout built outside any request (tests, tooling) serves
    nobody and is not refused.
    """
    if not flask.has_request_context():
        return None
    registered = dash.page_registry.get(module)
    user = access.current_user()
    if registered is not None and user is not None and user.role in access.page_roles(registered["path"]):
        return None
    log.warning("page %s refused to %s in its layout", module, user.role if user else "nobody")
    return html.Div(className="rs-page rs-page-refused", children=[
        html.P("This page is not open to your role. Pick a page from the menu.", className="rs-page-lead"),
    ])


def page(title: str, lead: str, *children: Any, title_id: str | None = None) -> html.Div:
    """A page: its heading, one line saying what it is for, then ``children``."""
    heading = html.H1(title, className="rs-page-title", **({"id": title_id} if title_id else {}))
    return html.Div(className="rs-page", children=[
        html.Header(className="rs-page-head", children=[heading, html.P(lead, className="rs-page-lead")]),
        *children,
    ])


def card(title: str, subtitle: str | None, body: Any, *, tools: Any = None, footer: Any = None) -> dbc.Card:
    """A titled card around ``body``; ``tools`` (a toggle) sit in its head, ``footer`` under the body."""
    head = [html.Div([html.H3(title, className="rs-card-title"),
                      html.Div(subtitle, className="rs-card-subtitle") if subtitle else None])]
    if tools is not None:
        head.append(html.Div(tools, className="rs-card-tools"))
    return dbc.Card(className="rs-card", children=[
        html.Div(head, className="rs-card-head"),
        dbc.CardBody([body, footer] if footer is not None else body, className="rs-card-body"),
    ])


def graph(graph_id: str, height: int | None = None, figure: go.Figure | None = None) -> dcc.Graph | dcc.Loading:
    """A graph. With ``figure``: drawn now, ``height`` pixels tall (default: the figure's own
    height). Without: a "Loading…" placeholder (default 320 px) that a callback fills, inside a
    loading indicator shown only when the work takes a moment."""
    if figure is not None:
        size = height or figure.layout.height or 400
        return dcc.Graph(id=graph_id, figure=figure, config=GRAPH_CONFIG, style={"height": f"{size}px"})
    size = height or 320
    return dcc.Loading(
        dcc.Graph(id=graph_id, config=GRAPH_CONFIG, style={"height": f"{size}px"},
                  figure=empty_figure("Loading…", size)),
        type="dot", color=PRIMARY, delay_show=150,
    )


def toggle(toggle_id: str, options: dict[str, str], value: str) -> dbc.RadioItems:
    """A row of buttons choosing one of ``options`` (value -> label), ``value`` chosen."""
    return dbc.RadioItems(
        id=toggle_id, options=[{"label": label, "value": key} for key, label in options.items()], value=value,
        inline=True, className="btn-group rs-toggle", inputClassName="btn-check",
        labelClassName="btn btn-sm btn-outline-secondary", labelCheckedClassName="active",
    )


def field(label: str, target: str, control: Any) -> html.Div:
    """A labelled filter control that takes the row's free width (``target`` is the control's id)."""
    return html.Div(className="rs-field rs-field-grow", children=[
        html.Label(label, className="rs-field-label", htmlFor=target), control,
    ])


def sentence(message: str) -> str:
    """``message`` as a sentence a person reads: capitalised, with a full stop."""
    text = message.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def capitalised(name: str) -> str:
    """A name from the data (a segment such as "at risk") as a label: "At risk"."""
    return name[:1].upper() + name[1:]


def guarded(where: str, fn: Callable[[], T], on_error: Callable[[str], T]) -> T:
    """Run a callback body. A RecsightError becomes its message as a sentence; anything else is a
    bug, logged with its traceback and shown as one line: the browser never sees a traceback."""
    try:
        return fn()
    except PreventUpdate:
        raise
    except RecsightError as exc:
        return on_error(sentence(str(exc)))
    except Exception:
        log.exception("%s failed", where)
        return on_error(UNEXPECTED)
