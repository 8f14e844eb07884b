"""The customer page's shopper preview: the list as cards the shopper would see, the view an agent
shares on a call (title, category, price with its currency, match in words, one reason; no scores,
no charts).
Logic in :mod:`workflows.preview`; this module is its button, dialog and callback."""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, ctx, html
from dash.exceptions import PreventUpdate

from dashboard.money import format_money
from pages._parts import current_settings, guarded, sentence
from service import access, audit, customer_state
from settings import Settings
from workflows.preview import PreviewCard, shopper_preview

__all__ = ["open_button", "dialog", "preview", "preview_view", "register"]


def open_button(disabled: bool) -> dbc.Button:
    """The button beside the list's heading."""
    return dbc.Button("Shopper preview", id="cu-preview-open", color="light", size="sm", className="rs-preset",
                      n_clicks=0, disabled=disabled)


def dialog() -> dbc.Modal:
    """The dialog the preview opens in (part of the page layout)."""
    return dbc.Modal(id="cu-preview-modal", size="xl", scrollable=True, is_open=False, children=[
        dbc.ModalHeader(dbc.ModalTitle("What the shopper sees")),
        dbc.ModalBody(html.Div(id="cu-preview-body")),
    ])


def preview(customer: dict[str, Any] | None, settings: Settings, record: Any = access.record_action) -> Any:
    """The preview cards of the looked-up customer (one audit row: it shows the reasons)."""
    if not customer or not customer.get("user_id"):
        raise PreventUpdate
    user_id = customer["user_id"]
    cards = shopper_preview(settings, user_id, customer.get("version"))
    record(audit.EXPLANATION_VIEW, customer=user_id, detail=f"shopper preview of {len(cards)} items")
    return preview_view(cards)


def preview_view(cards: list[PreviewCard]) -> html.Div:
    """The cards in a grid, in rank order."""
    if not cards:
        return html.P("The model has no items to recommend to this customer.", className="rs-empty")
    return html.Div(className="rs-preview-grid", id="cu-preview-cards", children=[_card(card) for card in cards])


def _card(card: PreviewCard) -> html.Div:
    facts = " · ".join(part for part in (card.category, card.brand) if part)
    return html.Div(className="rs-preview-card", id=f"cu-preview-{card.rank}", children=[
        html.Div(card.match or "", className="rs-preview-match"),
        html.Div(card.title, className="rs-preview-title", title=card.title),
        html.Div(facts, className="rs-preview-facts"),
        html.Div("" if card.price is None else format_money(card.price, card.currency), className="rs-preview-price"),
        html.Div(card.reason, className="rs-preview-reason"),
    ])


def _on_open(_clicks: int | None, customer: dict[str, Any] | None) -> tuple[bool, Any]:
    if not ctx.triggered_id or not _clicks:
        raise PreventUpdate
    settings = current_settings()
    body = guarded("customer lookup: shopper preview",
                   lambda: preview(customer_state.verified(customer), settings),
                   lambda message: html.P(sentence(message), className="rs-reason-note", id="cu-preview-problem"))
    return True, body


def register() -> None:
    """Hand the callback to Dash (``pages/user.py`` calls it with the page's other callbacks)."""
    callback(Output("cu-preview-modal", "is_open"), Output("cu-preview-body", "children"),
             Input("cu-preview-open", "n_clicks"), State("cu-customer", "data"),
             prevent_initial_call=True)(_on_open)
