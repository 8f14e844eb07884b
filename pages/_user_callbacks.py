"""The customer lookup's callbacks: the bodies (:func:`lookup`, :func:`reasons`, :func:`why`,
:func:`compare`, :func:`export`) and the thin Dash wiring that calls them.

Each body takes plain values, the settings and an audit recorder, and returns what the outputs
show, so tests call them without a browser. The work is :mod:`workflows.lookup`'s (finding the
customer, the list, the cached explanation), the components are :mod:`pages._user_views`'.
``pages/user.py`` calls :func:`register` so that Dash wires the callbacks with the page.

Every lookup (found or not), every explanation view ("Why?" and "compare") and every export
appends exactly one audit row *before* its result is shown; if the row cannot be written the
result is not shown. The customer store the browser keeps (``cu-customer.data``) is sealed for
the session right after the lookup's audit row (:mod:`service.customer_state`; a live refresh
re-seals the same customer's store after its own audit row), and every
callback that reads it checks the seal first (the guard checks it too, before any callback
runs): the reasons under the cards, which have no audit row of their own, can then only be those
of a customer this session looked up, and audited.

Lookups and "did you mean" suggestions are limited per login (:mod:`service.throttle`, shared
with the API), so the page cannot map shop ids to pseudonyms in bulk either.

Problems are messages on the page (a :class:`RecsightError`'s one line); anything unexpected is
logged with its traceback and shown as one line, never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

import dash
from dash import ALL, Input, Output, State, callback, clientside_callback, ctx, dcc, html
from dash.exceptions import PreventUpdate

from analytics.customers import clean_customer_ref
from errors import RecsightError
from explain.types import ItemExplanation
from pages._parts import current_settings, guarded, sentence
from pages._rules_parts import ADDED_NOTE
from pages._user_views import (
    EXPORT_FORMATS,
    LIVE_TICK,
    REASONS,
    WHY,
    OpenComparison,
    alert,
    comparison_view,
    counterfactual_box,
    found_children,
    not_found_view,
    result_view,
    why_view,
)
from service import access, audit, customer_state, throttle
from service.users import ADMIN
from settings import Settings
from workflows import changes as live_work
from workflows import lookup as work
from workflows.lookup import Found, K

__all__ = [
    "lookup", "live", "LiveView", "reasons", "why", "compare", "export", "register", "LookupView", "WhyView", "K",
    "REASONS_SHOWN", "Recorder",
]

log = logging.getLogger(__name__)

REASONS_SHOWN = 3

Recorder = Callable[..., Any]  # service.access.record_action(action, customer=..., detail=...)


class LookupView(NamedTuple):
    """What :func:`lookup` puts on the page: the result area, and the customer store (None when
    nobody was found)."""

    result: Any
    customer: dict[str, Any] | None


class LiveView(NamedTuple):
    """What :func:`live` puts on the page: the result's parts, and the customer store (unsealed)."""

    children: Any
    customer: dict[str, Any]


class WhyView(NamedTuple):
    """The "Why?" dialog's title and body."""

    title: Any
    body: Any


# --------------------------------------------------------------------------- callback bodies


def lookup(typed: Any, settings: Settings, record: Recorder = access.record_action) -> LookupView:
    """Find the customer, record the lookup, and build the profile, timeline and item cards."""
    try:
        text = clean_customer_ref(typed)
    except RecsightError as exc:
        return LookupView(alert(str(exc), "warning", "cu-problem"), None)  # nothing was looked up
    wait = throttle.lookup_wait(settings, "lookup page")  # per login: no mapping of ids to pseudonyms in bulk
    if wait is not None:
        return LookupView(alert(f"too many lookups in a short time: try again in {wait} seconds", "warning",
                                "cu-problem"), None)

    def audited(customer: str | None, detail: str) -> None:
        record(audit.CUSTOMER_LOOKUP, customer=customer, detail=detail)

    found = work.look_up(text, settings, audited)
    if not isinstance(found, Found):
        shown = found.suggestions if found.suggestions and throttle.suggestions_allowed(settings) else []
        return LookupView(not_found_view(found.message, shown), None)
    store = _store(found, live_work.seen_mark(settings, found.user_id))
    return LookupView(result_view(store, found, raw_units=_raw_units()), store)


def live(customer: dict[str, Any] | None, settings: Settings, record: Recorder = access.record_action,
         comparison: OpenComparison | None = None) -> LiveView:
    """The open page's tick: nothing (``PreventUpdate``) while the customer has no event the page
    has not seen, which costs no SQL and no ranking; else the page's parts anew with what changed,
    and the store with the new list and mark. One audit row per refresh shown (none per tick).

    What the page has seen (``seen``, the customer's feature time when the list was shown) is in
    the store the server sealed, never taken from the browser unsealed: the guard and
    :func:`service.customer_state.verified` refuse any other."""
    user_id = _customer(customer)
    found = live_work.refresh(settings, user_id, customer.get("seen"), customer.get("version"))
    if found is None:
        raise PreventUpdate
    moves = found.changes
    record(audit.CUSTOMER_LOOKUP, customer=user_id,
           detail=f"live refresh: {len(moves.new_events)} new events, {len(moves.entered)} entered, "
                  f"{len(moves.left)} left, {len(moves.moved)} moved")
    store = _store(found.found, found.mark)
    return LiveView(found_children(store, found.found, moves, comparison, raw_units=_raw_units()), store)


def _raw_units() -> bool:
    """Whether the signed-in user sees the ranker's raw units: admins (the analyst's side) do;
    a support agent sees match strength and shares, words a customer can be told."""
    user = access.current_user()
    return user is not None and user.role == ADMIN


def _store(found: Found, seen: str | None) -> dict[str, Any]:
    """The customer store of a lookup or refresh (sealed by the wiring): whom, under which model,
    the listed items, and what the page has seen of the customer's events."""
    return {"user_id": found.user_id, "version": found.version, "cold_start": found.cold_start,
            "items": [[item.item_id, item.title, item.rank] for item in found.items], "seen": seen}


def reasons(customer: dict[str, Any] | None, item_ids: list[str], settings: Settings) -> list[Any]:
    """The reasons under each item card (in ``item_ids`` order), from the customer's explanation.

    Part of the lookup the agent already made, so no audit row of its own.
    """
    user_id = _customer(customer)
    explanation = work.explanation_for(settings, user_id, customer.get("version"))
    by_item = {item.item_id: item for item in explanation.items}
    out = []
    for item_id in item_ids:
        item = by_item.get(item_id)
        if item is None:
            out.append(html.Div("The model changed since this lookup: look the customer up again.",
                                className="rs-reason-note"))
        elif getattr(item, "added", False):  # a merchandising rule put it in the list: no model reasons
            out.append(html.Div(ADDED_NOTE, className="rs-reason-note"))
        elif not item.reasons:
            out.append(html.Div("No single strong reason: several small signals add up.", className="rs-reason-note"))
        else:
            out.append(html.Ul([html.Li(text) for text in item.reasons[:REASONS_SHOWN]], className="rs-reasons"))
    return out


def why(customer: dict[str, Any] | None, item_id: str, settings: Settings,
        record: Recorder = access.record_action) -> WhyView:
    """The "Why?" dialog for one item: reasons, the SHAP waterfall, the history events with their
    attributions and attention weights, and the counterfactual hint. One audit row."""
    user_id = _customer(customer)
    _require_listed(customer, item_id)
    explanation = work.explanation_for(settings, user_id, customer.get("version"))
    item = next((i for i in explanation.items if i.item_id == item_id), None)
    if item is None:
        raise RecsightError("this item is no longer in the customer's list: look the customer up again")
    counterfactual = _counterfactual(settings, item)
    record(audit.EXPLANATION_VIEW, customer=user_id, detail=f"why #{item.rank} {item_id}")
    return WhyView(*why_view(item, counterfactual, _raw_units()))


def compare(customer: dict[str, Any] | None, item_a: str | None, item_b: str | None, settings: Settings,
            record: Recorder = access.record_action) -> Any:
    """Why item A sits above (or below) item B for this customer. One audit row."""
    user_id = _customer(customer)
    if not item_a or not item_b:
        raise RecsightError("pick two items to compare")
    if item_a == item_b:
        raise RecsightError("pick two different items to compare")
    for item_id in (item_a, item_b):
        _require_listed(customer, item_id)
    comparison = work.compare_listed(settings, user_id, item_a, item_b, customer.get("version"))
    record(audit.EXPLANATION_VIEW, customer=user_id, detail=f"compare {item_a} with {item_b}")
    return comparison_view(comparison)


def export(customer: dict[str, Any] | None, fmt: str, settings: Settings,
           record: Recorder = access.record_action) -> dict[str, Any]:
    """The customer's report as a ``dcc.Download`` payload (html, pdf or csv). One audit row."""
    user_id = _customer(customer)
    if fmt not in EXPORT_FORMATS:
        raise RecsightError(f"unknown report format {fmt!r}: choose html, pdf or csv")
    content = work.report_for(settings, user_id, fmt, customer.get("version"))  # seconds: the counterfactuals
    record(audit.REPORT_EXPORT, customer=user_id, detail=f"{fmt} report")
    day = datetime.now(UTC).strftime("%Y%m%d")
    return dcc.send_bytes(content, f"recsight-{user_id}-{day}.{fmt}", type=EXPORT_FORMATS[fmt][1])


def _counterfactual(settings: Settings, item: ItemExplanation) -> Any:
    """The counterfactual box: the explanation's own sentence, else one computed now (verified by
    re-scoring the customer without the removed events)."""
    text, hint, verified = item.counterfactual, None, None
    if not text:
        try:
            found = work.counterfactual_for(settings, item)
            text, hint, verified = found.sentence, found.raise_hint, found.verified
        except RecsightError as exc:
            text = f"No counterfactual for this item: {sentence(str(exc))}"
    return counterfactual_box(text, hint, verified)


# --------------------------------------------------------------------------- helpers


def _customer(customer: dict[str, Any] | None) -> str:
    user_id = (customer or {}).get("user_id")
    if not isinstance(user_id, str) or not user_id:
        raise RecsightError("look a customer up first")
    return user_id


def _require_listed(customer: dict[str, Any], item_id: Any) -> None:
    listed = {row[0] for row in customer.get("items") or [] if row}
    if item_id not in listed:
        raise RecsightError("that item is not in this customer's list: look the customer up again")


def _clicked() -> bool:
    """Whether the callback was fired by a real click (new buttons arrive with no clicks)."""
    return any(entry.get("value") for entry in ctx.triggered or [])


# --------------------------------------------------------------------------- wiring


def _on_lookup(_clicks: int | None, _submits: int | None, initial: str | None, typed: str | None) -> LookupView:
    if ctx.triggered_id == "cu-initial" or not ctx.triggered_id:
        if not initial:
            raise PreventUpdate
        typed = initial
    elif not _clicked():
        raise PreventUpdate
    settings = current_settings()
    return guarded("customer lookup: lookup", lambda: _sealed(lookup(typed, settings)),
                   lambda message: LookupView(alert(message, "danger", "cu-problem"), None))


def _sealed(view: LookupView) -> LookupView:
    """The lookup's result with its customer store sealed for this session (after its audit row)."""
    return view._replace(customer=customer_state.seal(view.customer)) if view.customer else view


# The address bar after a lookup: /user/<pseudonym>, in an entry marked as looked up (for
# _DEEP_LINK). A new entry after a lookup typed on the page; the same entry, replaced, when the
# address already names the customer, or names anyone by something other than a pseudonym (a
# shop id reached without a page load): such an address must not stay in the history.
_PUSH_URL = """function (customer) {
    if (!customer || !customer.user_id) { return window.dash_clientside.no_update; }
    const path = window.location.pathname;
    const base = path.replace(/\\/user(\\/.*)?$/, "");
    const target = base + "/user/" + encodeURIComponent(customer.user_id);
    const here = path.slice(base.length);
    const state = {recsightLookedUp: customer.user_id};
    if (path === target || (/^\\/user\\/./.test(here) && !/^\\/user\\/c_[0-9a-f]{20}\\/?$/.test(here))) {
        window.history.replaceState(state, "", target);
    } else {
        window.history.pushState(state, "", target);
    }
    return window.dash_clientside.no_update;
}"""

# A deep link's customer (cu-link) is looked up (cu-initial) once: not when Back or Forward
# return to an entry _PUSH_URL marked as looked up; then the search is filled in and a click
# looks up, and audits, again.
_DEEP_LINK = """function (link) {
    const state = window.history.state;
    if (!link || (state && state.recsightLookedUp === link)) { return window.dash_clientside.no_update; }
    return link;
}"""


def _on_tick(_ticks: int | None, customer: dict[str, Any] | None, item_a: str | None, item_b: str | None,
             compared: Any) -> tuple[Any, Any]:
    if not customer:
        raise PreventUpdate
    settings = current_settings()

    def run() -> tuple[Any, Any]:
        view = live(customer_state.verified(customer), settings, comparison=OpenComparison(item_a, item_b, compared))
        return view.children, customer_state.seal(view.customer)  # the same customer, audited above

    return guarded("customer lookup: live refresh", run, lambda message: (dash.no_update, dash.no_update))


def _on_customer(customer: dict[str, Any] | None) -> list[Any]:
    if not customer:
        raise PreventUpdate
    item_ids = [spec["id"]["item"] for spec in ctx.outputs_list]
    if not item_ids:
        raise PreventUpdate
    settings = current_settings()
    return guarded("customer lookup: reasons", lambda: reasons(customer_state.verified(customer), item_ids, settings),
                   lambda message: [html.Div(sentence(message), className="rs-reason-note")] * len(item_ids))


def _on_why(_clicks: list[int | None], customer: dict[str, Any] | None) -> tuple[bool, Any, Any]:
    if not _clicked() or not isinstance(ctx.triggered_id, dict):
        raise PreventUpdate
    item_id = ctx.triggered_id.get("item")
    settings = current_settings()
    view = guarded("customer lookup: why", lambda: why(customer_state.verified(customer), item_id, settings),
                   lambda message: WhyView("Why this item?", alert(message, "warning", "cu-why-problem")))
    return True, view.title, view.body


def _on_compare(_clicks: int | None, item_a: str | None, item_b: str | None, customer: dict[str, Any] | None) -> Any:
    if not _clicked():
        raise PreventUpdate
    settings = current_settings()
    return guarded("customer lookup: compare",
                   lambda: compare(customer_state.verified(customer), item_a, item_b, settings),
                   lambda message: alert(message, "warning", "cu-compare-problem"))


def _on_export(*args: Any) -> tuple[Any, Any]:
    if not _clicked() or not isinstance(ctx.triggered_id, str):
        raise PreventUpdate
    fmt = ctx.triggered_id.removeprefix("cu-export-")
    customer = args[-1]
    settings = current_settings()

    def run() -> tuple[Any, Any]:
        payload = export(customer_state.verified(customer), fmt, settings)
        return payload, f"{EXPORT_FORMATS[fmt][0]} report downloaded."

    return guarded("customer lookup: export", run, lambda message: (dash.no_update, sentence(message)))


def register() -> None:
    """Hand the page's callbacks to Dash. ``pages/user.py`` calls this each time Dash loads the page
    (Dash runs a page module afresh for every app it builds, so each app gets the callbacks; an
    import alone would register them for the first app of the process only)."""
    customer_state.protect("cu-customer", "data")
    callback(
        Output("cu-result", "children"), Output("cu-customer", "data"),
        Input("cu-go", "n_clicks"), Input("cu-search", "n_submit"), Input("cu-initial", "data"),
        State("cu-search", "value"),
    )(_on_lookup)
    clientside_callback(_PUSH_URL, Output("cu-url", "children"), Input("cu-customer", "data"))
    clientside_callback(_DEEP_LINK, Output("cu-initial", "data"), Input("cu-link", "data"))
    callback(
        Output("cu-found", "children"), Output("cu-customer", "data", allow_duplicate=True),
        Input(LIVE_TICK, "n_intervals"), State("cu-customer", "data"),
        State("cu-compare-a", "value"), State("cu-compare-b", "value"), State("cu-compare-body", "children"),
        prevent_initial_call=True,
    )(_on_tick)
    callback(Output({"type": REASONS, "item": ALL}, "children"), Input("cu-customer", "data"))(_on_customer)
    callback(
        Output("cu-why-modal", "is_open"), Output("cu-why-title", "children"), Output("cu-why-body", "children"),
        Input({"type": WHY, "item": ALL}, "n_clicks"),
        State("cu-customer", "data"),
        prevent_initial_call=True,
    )(_on_why)
    callback(
        Output("cu-compare-body", "children"),
        Input("cu-compare-go", "n_clicks"),
        State("cu-compare-a", "value"), State("cu-compare-b", "value"), State("cu-customer", "data"),
        prevent_initial_call=True,
    )(_on_compare)
    callback(
        Output("cu-download", "data"), Output("cu-export-status", "children"),
        *(Input(f"cu-export-{fmt}", "n_clicks") for fmt in EXPORT_FORMATS),
        State("cu-customer", "data"),
        prevent_initial_call=True,
    )(_on_export)
