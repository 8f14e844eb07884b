"""Customer lookup (support): find one customer, see who they are to the shop, what we recommend
and why, and export it as a report.

Thin like every page: the layout, and callbacks whose bodies are the module-level functions
below (:func:`lookup`, :func:`reasons`, :func:`why`, :func:`compare`, :func:`export`); each takes
plain values, the settings and an audit recorder, and returns what the outputs show, so tests
call them without a browser. Data comes from :mod:`analytics.customer_view`, the list from the
shared recommender (:func:`service.engine.recommender_for`), explanations from
:mod:`explain.api`, figures from :mod:`explain.figures`, reports from :mod:`explain.report`.

Finding a customer is exact and server-side (a shop id is hashed with the shop's secret, a
pseudonym is taken as is): nothing ever lists every customer. ``/user/<id>`` deep-links to a
lookup; after a typed lookup the address bar shows ``/user/<pseudonym>`` (never the typed shop
id), so the link can be shared without revealing it.

Every lookup (found or not), every explanation view ("Why?" and "compare") and every export
appends exactly one audit row *before* its result is shown; if the row cannot be written the
result is not shown. Problems are messages on the page (a :class:`RecsightError`'s one line);
anything unexpected is logged with its traceback and shown as one line, never a traceback.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Callable, NamedTuple
from urllib.parse import unquote

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import ALL, Input, Output, State, callback, clientside_callback, ctx, dcc, html
from dash.exceptions import PreventUpdate

from analytics import customer_view as cv
from analytics import schema as s
from analytics.overview_figures import PRIMARY
from app import current_settings
from errors import RecsightError
from pages._parts import capitalised, guarded, page, sentence
from explain import api, figures
from explain.report import render_report
from explain.types import CustomerExplanation, ItemExplanation
from service import access, audit
from service.engine import recommender_for
from settings import Settings

__all__ = [
    "layout", "build_layout", "lookup", "reasons", "why", "compare", "export", "explanation_for",
    "LookupView", "WhyView", "K", "EXPORT_FORMATS", "Recorder",
]

dash.register_page(__name__, path="/user", path_template="/user/<user_id>", name="Customer lookup",
                   title="Customer lookup · Recsight", order=10)

log = logging.getLogger(__name__)

K = 10  # items in the list the agent sees (the API's default too)
REASONS_SHOWN = 3
EXPORT_FORMATS: dict[str, tuple[str, str]] = {  # format -> (button label, MIME type)
    "html": ("HTML", "text/html"), "pdf": ("PDF", "application/pdf"), "csv": ("CSV", "text/csv"),
}
WHY, REASONS = "cu-why", "cu-reasons"  # pattern-matching id types
_GRAPH_CONFIG = {"displayModeBar": False, "responsive": True}
_CACHE_SIZE = 64
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lookup")  # rankings beside the page's reads

Recorder = Callable[..., Any]  # service.access.record_action(action, customer=..., detail=...)


class LookupView(NamedTuple):
    """What :func:`lookup` puts on the page: the result area, and the customer store (None when
    nobody was found)."""

    result: Any
    customer: dict[str, Any] | None


class WhyView(NamedTuple):
    """The "Why?" dialog's title and body."""

    title: Any
    body: Any


# --------------------------------------------------------------------------- layout


def layout(user_id: str | None = None, **_query: str) -> Any:
    """Dash calls this per visit; ``user_id`` comes from a ``/user/<id>`` deep link."""
    return build_layout(unquote(user_id) if user_id else None)


def build_layout(user_id: str | None = None) -> Any:
    """The search bar and an empty result area; a deep link pre-fills the search and looks up."""
    typed = (user_id or "")[: cv.MAX_TYPED_LENGTH]
    return page(
        "Customer lookup",
        "Find one customer, see what we recommend to them and why, and export it as a report. "
        "Every lookup is recorded in the audit log.",
        html.Div(className="rs-filters rs-lookup-bar", children=[
            html.Div(className="rs-field rs-lookup-field", children=[
                html.Label("Customer", className="rs-field-label", htmlFor="cu-search"),
                dbc.InputGroup([
                    dbc.Input(id="cu-search", type="search", value=typed, maxLength=cv.MAX_TYPED_LENGTH,
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


# --------------------------------------------------------------------------- callback bodies


def lookup(typed: Any, settings: Settings, record: Recorder = access.record_action) -> LookupView:
    """Find the customer, record the lookup, and build the profile, timeline and item cards."""
    try:
        text = cv.clean_typed_id(typed)
    except RecsightError as exc:
        return LookupView(_alert(str(exc), "warning", "cu-problem"), None)  # nothing was looked up
    recommender = recommender_for(settings)
    try:
        user_id = cv.find_customer(recommender, text, settings.secret)
    except RecsightError as exc:
        with cv.shop_cursor(settings.db_path) as con:
            suggestions = cv.suggest_customers(con, text)
        record(audit.CUSTOMER_LOOKUP, customer=None, detail="no customer matched")
        return LookupView(_not_found(str(exc), suggestions), None)
    # Ranking is most of the wait: it runs beside the profile reads and the audit row, whose
    # append must still succeed before anything of the customer is returned.
    ranking = _POOL.submit(recommender.recommend, user_id, K)
    try:
        with cv.shop_cursor(settings.db_path) as con:
            card = cv.profile_card(con, user_id)
            frame, total = cv.timeline(con, user_id)
        record(audit.CUSTOMER_LOOKUP, customer=user_id,
               detail=f"looked up by {'pseudonym' if user_id == text else 'shop id'}")
    except BaseException:
        ranking.cancel()  # a running ranking finishes on its own; nothing of it is shown
        raise
    result = ranking.result()
    with cv.shop_cursor(settings.db_path) as con:
        details = _item_details(con, [item.item_id for item in result.items])
    store = {"user_id": user_id, "version": recommender.artifact.path.name, "cold_start": result.cold_start,
             "items": [[item.item_id, item.title, item.rank] for item in result.items]}
    return LookupView(_result(store, card, frame, total, result.items, details), store)


def reasons(customer: dict[str, Any] | None, item_ids: list[str], settings: Settings) -> list[Any]:
    """The reasons under each item card (in ``item_ids`` order), from the customer's explanation.

    Part of the lookup the agent already made, so no audit row of its own.
    """
    user_id = _customer(customer)
    explanation = explanation_for(settings, user_id, customer.get("version"))
    by_item = {item.item_id: item for item in explanation.items}
    out = []
    for item_id in item_ids:
        item = by_item.get(item_id)
        if item is None:
            out.append(html.Div("The model changed since this lookup: look the customer up again.",
                                className="rs-reason-note"))
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
    explanation = explanation_for(settings, user_id, customer.get("version"))
    item = next((i for i in explanation.items if i.item_id == item_id), None)
    if item is None:
        raise RecsightError("this item is no longer in the customer's list: look the customer up again")
    counterfactual = _counterfactual(settings, user_id, item)
    record(audit.EXPLANATION_VIEW, customer=user_id, detail=f"why #{item.rank} {item_id}")
    title = [html.Span(f"#{item.rank}", className="rs-rank me-2"), f"Why “{item.title}”?"]
    body = html.Div(className="rs-why", children=[
        html.Div(className="rs-why-reasons", children=[
            html.H3("In words", className="rs-card-title mb-2"),
            html.Ul([html.Li(text) for text in item.reasons], className="rs-reasons", id="cu-why-reasons")
            if item.reasons else html.P("No single strong reason: several small signals add up.",
                                        id="cu-why-reasons", className="rs-reason-note"),
            counterfactual,
        ]),
        html.Div(className="rs-why-figures", children=[
            _graph("cu-why-waterfall", figures.shap_waterfall(item)),
            _graph("cu-why-history", figures.history_attributions(item)),
        ]),
        html.P(
            f"Scores are the ranker's raw units: the base value plus the contributions gives {item.score:.3f}. "
            f"The deep-interest (attention) signal carries {item.attention_share:.0%} of this score's "
            f"explanation; its history attributions are complete to {abs(item.convergence_delta):.1e}.",
            className="rs-table-note mt-2"),
    ])
    return WhyView(title, body)


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
    comparison = api.compare_items(recommender_for(settings), user_id, item_a, item_b)
    record(audit.EXPLANATION_VIEW, customer=user_id, detail=f"compare {item_a} with {item_b}")
    return html.Div(id="cu-comparison", children=[
        html.Ul([html.Li(text) for text in comparison.summary], className="rs-reasons", id="cu-compare-summary"),
        _graph("cu-compare-figure", figures.comparison_bars(comparison)),
    ])


def export(customer: dict[str, Any] | None, fmt: str, settings: Settings,
           record: Recorder = access.record_action) -> dict[str, Any]:
    """The customer's report as a ``dcc.Download`` payload (html, pdf or csv). One audit row."""
    user_id = _customer(customer)
    if fmt not in EXPORT_FORMATS:
        raise RecsightError(f"unknown report format {fmt!r}: choose html, pdf or csv")
    explanation = explanation_for(settings, user_id, customer.get("version"))
    content = render_report(explanation, fmt, charts="css")  # an agent waits on this click
    record(audit.REPORT_EXPORT, customer=user_id, detail=f"{fmt} report")
    day = datetime.now(timezone.utc).strftime("%Y%m%d")
    return dcc.send_bytes(content, f"recsight-{user_id}-{day}.{fmt}", type=EXPORT_FORMATS[fmt][1])


# --------------------------------------------------------------------------- explanations, cached


_cache: OrderedDict[tuple[str, ...], CustomerExplanation] = OrderedDict()
_cache_lock = threading.Lock()


def explanation_for(settings: Settings, user_id: str, version: str | None = None) -> CustomerExplanation:
    """The customer's :class:`~explain.types.CustomerExplanation` under the model in use, computed
    once per customer and model version and kept for the dialog, the comparison and the exports.

    A lookup made under an older model version than the one in use now is refused with a
    message: the cards on screen would not match the explanation.
    """
    recommender = recommender_for(settings)
    current = recommender.artifact.path.name
    if version is not None and version != current:
        raise RecsightError("the model was updated since this lookup: look the customer up again")
    key = (str(settings.db_path), str(settings.models_dir), current, user_id)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    explanation = api.explain_customer(recommender, user_id, K)
    with _cache_lock:
        _cache[key] = explanation
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return explanation


def _counterfactual(settings: Settings, user_id: str, item: ItemExplanation) -> Any:
    """The counterfactual box: the explanation's own sentence, else one computed now (verified by
    re-scoring the customer without the removed events)."""
    text, hint, verified = item.counterfactual, None, None
    if not text:
        try:
            found = api.counterfactual_for(recommender_for(settings), user_id, item.item_id, k=K)
            text, hint, verified = found.sentence, found.raise_hint, found.verified
        except RecsightError as exc:
            text = f"No counterfactual for this item: {sentence(str(exc))}"
    badge = None if verified is None else dbc.Badge("verified by re-scoring" if verified else "estimate",
                                                    color="success" if verified else "secondary",
                                                    className="ms-2 fw-normal")
    return html.Div(className="rs-counterfactual", id="cu-why-counterfactual", children=[
        html.Div(["What would change it", badge], className="rs-field-label mb-1"),
        html.Div(text),
        html.Div(hint, className="rs-table-note mt-1") if hint else None,
    ])


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


def _item_details(con: Any, item_ids: list[str]) -> dict[str, tuple[Any, Any, Any]]:
    """Category, brand and price of the listed items, for the cards."""
    if not item_ids:
        return {}
    rows = con.execute(
        f"SELECT {s.ITEM_ID}, {s.CATEGORY}, {s.BRAND}, {s.PRICE} FROM {s.ITEMS} "
        f"WHERE {s.ITEM_ID} IN (SELECT unnest(?::VARCHAR[]))", [item_ids]).fetchall()
    return {row[0]: row[1:] for row in rows}


def _result(store: dict[str, Any], card: cv.ProfileCard, frame: pd.DataFrame, total: int, items: list[Any],
            details: dict[str, tuple[Any, Any, Any]]) -> Any:
    cold = store["cold_start"]
    notes = []
    if cold:
        notes.append(_alert(
            "New customer: there is no behaviour to personalise from yet, so the list shows the shop's "
            "popular items and the reasons describe popularity, not this customer's taste.", "info", "cu-cold-start"))
    options = [{"label": f"#{rank} {title}", "value": item_id} for item_id, title, rank in store["items"]]
    return html.Div(id="cu-found", children=[
        *notes,
        dbc.Row(className="g-3", children=[
            dbc.Col(_profile(card), lg=4),
            dbc.Col(_card("Behaviour over time", "Each mark is one event; hover for the item",
                          _graph("cu-timeline", cv.timeline_figure(frame, total, 360), 360)), lg=8),
        ]),
        html.Div(className="rs-section-head", children=[
            html.H2(f"Top {len(items)} recommendations" if items else "Recommendations", className="rs-section-title"),
            html.Div(className="rs-inline-field", children=[
                html.Span("Export report", className="rs-field-label"),
                dbc.ButtonGroup([
                    dbc.Button(label, id=f"cu-export-{fmt}", color="light", size="sm", className="rs-preset",
                               n_clicks=0, disabled=not items)
                    for fmt, (label, _) in EXPORT_FORMATS.items()
                ]),
                dcc.Loading(html.Span(id="cu-export-status", className="rs-table-note"), type="circle",
                            color=PRIMARY),
            ]),
        ]),
        html.Div(className="rs-items", id="cu-items", children=[_item_card(item, details.get(item.item_id))
                                                                 for item in items])
        if items else html.Div("The model has no items to recommend to this customer.", className="rs-empty"),
        html.Div(className="rs-section-head", children=[html.H2("Compare two items", className="rs-section-title")]),
        html.Div(className="rs-filters rs-compare", children=[
            _field("Item A", "cu-compare-a", dcc.Dropdown(id="cu-compare-a", options=options, clearable=False,
                                                         value=options[0]["value"] if options else None)),
            _field("Item B", "cu-compare-b", dcc.Dropdown(id="cu-compare-b", options=options, clearable=False,
                                                         value=options[1]["value"] if len(options) > 1 else None)),
            html.Div(className="rs-field", children=[
                html.Span("Why A and not B?", className="rs-field-label"),
                dbc.Button("Compare", id="cu-compare-go", color="primary", size="sm", n_clicks=0,
                           disabled=len(options) < 2),
            ]),
        ]),
        dcc.Loading(html.Div(id="cu-compare-body"), type="dot", color=PRIMARY),
    ])


def _item_card(item: Any, detail: tuple[Any, Any, Any] | None) -> html.Div:
    category, brand, price = detail or (None, None, None)
    meta = [part for part in (_leaf(category), brand, None if price is None else f"{price:,.2f}") if part]
    return html.Div(className="rs-item", id=f"cu-item-{item.rank}", children=[
        html.Div(className="rs-item-head", children=[
            html.Span(f"#{item.rank}", className="rs-rank"),
            html.Div(className="rs-item-name", children=[
                html.Div(item.title, className="rs-item-title", title=item.title),
                html.Div(" · ".join(meta + [item.item_id]), className="rs-item-meta"),
            ]),
            html.Div(f"{item.score:.3f}", className="rs-item-score", title="ranker score (raw units)"),
        ]),
        html.Div(id={"type": REASONS, "item": item.item_id}, className="rs-item-reasons", children=[
            dbc.Spinner(size="sm", color="secondary", spinner_class_name="me-2"),
            html.Span("Finding the reasons…", className="rs-reason-note"),
        ]),
        html.Div(className="rs-item-foot", children=[
            dbc.Button("Why?", id={"type": WHY, "item": item.item_id}, color="link", size="sm",
                       className="rs-why-button", n_clicks=0),
        ]),
    ])


def _leaf(category: Any) -> str | None:
    if not category:
        return None
    return str(category).split(s.CATEGORY_SEPARATOR)[-1]


def _profile(card: cv.ProfileCard) -> dbc.Card:
    head = html.Div(className="rs-profile-head", children=[
        html.Div([html.Div("Customer", className="rs-field-label"),
                  html.Div(card.user_id, className="rs-pseudonym", id="cu-pseudonym")]),
        dbc.Badge(capitalised(card.segment) if card.segment else "No segment", color="light",
                  className="rs-segment", id="cu-segment"),
    ])
    if not card.has_profile:
        return _card("Profile", None, [head, html.P(
            "No profile yet: this customer has no recorded behaviour, or the shop's profiles were not "
            "built (python cli.py ingest builds them).", className="rs-empty")])
    purchases = card.counts.get(s.PURCHASE, 0)
    stats = [
        ("Events", f"{card.events:,}", f"{card.sessions:,} sessions"),
        ("Purchases", f"{purchases:,}", f"on {card.frequency:,} days"),
        ("Net spend", "—" if card.monetary is None else f"{card.monetary:,.2f}", "purchases minus returns"),
        ("Last purchase", "never" if card.recency_days is None else _days(card.recency_days),
         "" if card.conversion_rate is None else f"{card.conversion_rate:.1%} of views bought"),
    ]
    r, f, m = card.rfm
    return _card("Profile", _active(card), [
        head,
        html.Div(className="rs-stats", children=[
            html.Div(className="rs-stat", children=[html.Div(label, className="rs-kpi-label"),
                                                   html.Div(value, className="rs-stat-value"),
                                                   html.Div(caption, className="rs-kpi-caption")])
            for label, value, caption in stats
        ]),
        html.Div(f"RFM scores: recency {r or '–'} · frequency {f or '–'} · monetary {m or '–'} (1–5)",
                 className="rs-table-note mb-2"),
        _shares("Favourite categories", card.top_categories, leaf=True),
        _shares("Favourite brands", card.top_brands),
        html.Div(className="rs-price-band", children=[
            html.Div("Price band", className="rs-field-label"),
            html.Div(_band("Views", card.view_prices)),
            html.Div(_band("Purchases", card.buy_prices)),
        ]),
    ])


def _shares(title: str, shares: list[tuple[str, float]], leaf: bool = False) -> html.Div:
    rows = [html.Div(className="rs-share", children=[
        html.Span(_leaf(name) if leaf else name, className="rs-share-name", title=name),
        html.Span(className="rs-share-bar", children=html.Span(style={"width": f"{share:.0%}"})),
        html.Span(f"{share:.0%}", className="rs-share-value"),
    ]) for name, share in shares]
    return html.Div(className="rs-shares", children=[
        html.Div(title, className="rs-field-label"),
        *(rows or [html.Div("none yet", className="rs-table-note")]),
    ])


def _band(label: str, band: tuple[float, float, float] | None) -> str:
    if band is None:
        return f"{label}: no prices yet"
    low, mid, high = band
    return f"{label}: {low:,.2f} – {high:,.2f} (median {mid:,.2f})"


def _active(card: cv.ProfileCard) -> str | None:
    if card.first_active is None or card.last_active is None:
        return None
    return f"Active {card.first_active:%d %b %Y} – {card.last_active:%d %b %Y}"


def _days(days: float) -> str:
    if days < 1:
        return "today"
    whole = int(days)
    return f"{whole} day{'s' if whole != 1 else ''} ago"


def _not_found(message: str, suggestions: list[str]) -> html.Div:
    hint = [html.P("Check the id, or paste the customer's pseudonym (c_…) from a report or the audit log.")]
    if suggestions:
        hint.append(html.Div(className="rs-suggestions", children=[
            html.Span("Did you mean ", className="rs-table-note"),
            *[dcc.Link(pseudonym, href=dash.get_relative_path(f"/user/{pseudonym}"), className="rs-pseudonym me-2")
              for pseudonym in suggestions],
        ]))
    return html.Div(className="rs-empty-state", id="cu-not-found", children=[
        html.Div("No customer found", className="rs-empty-title"),
        html.P(sentence(message), id="cu-not-found-message"),
        *hint,
    ])


def _card(title: str, subtitle: str | None, body: Any) -> dbc.Card:
    return dbc.Card(className="rs-card", children=[
        html.Div(className="rs-card-head", children=[html.Div([
            html.H3(title, className="rs-card-title"),
            html.Div(subtitle, className="rs-card-subtitle") if subtitle else None,
        ])]),
        dbc.CardBody(body, className="rs-card-body"),
    ])


def _graph(graph_id: str, figure: Any, height: int | None = None) -> dcc.Graph:
    """A graph sized by ``height`` or, without one, by its figure's own height."""
    size = height or figure.layout.height or 400
    return dcc.Graph(id=graph_id, figure=figure, config=_GRAPH_CONFIG, style={"height": f"{size}px"})


def _field(label: str, target: str, control: Any) -> html.Div:
    return html.Div(className="rs-field rs-field-grow", children=[
        html.Label(label, className="rs-field-label", htmlFor=target), control,
    ])


def _alert(message: str, color: str, alert_id: str | None = None) -> dbc.Alert:
    return dbc.Alert(sentence(message), color=color, className="rs-alert", id=alert_id or "cu-alert")





def _clicked() -> bool:
    """Whether the callback was fired by a real click (new buttons arrive with no clicks)."""
    return any(entry.get("value") for entry in ctx.triggered or [])


# --------------------------------------------------------------------------- wiring


@callback(
    Output("cu-result", "children"), Output("cu-customer", "data"),
    Input("cu-go", "n_clicks"), Input("cu-search", "n_submit"), Input("cu-initial", "data"),
    State("cu-search", "value"),
)
def _on_lookup(_clicks: int | None, _submits: int | None, initial: str | None, typed: str | None) -> LookupView:
    if ctx.triggered_id == "cu-initial" or not ctx.triggered_id:
        if not initial:
            raise PreventUpdate
        typed = initial
    elif not _clicked():
        raise PreventUpdate
    settings = current_settings()
    return guarded("customer lookup: lookup", lambda: lookup(typed, settings),
                    lambda message: LookupView(_alert(message, "danger", "cu-problem"), None))


clientside_callback(
    """function (customer) {
        if (!customer || !customer.user_id) { return window.dash_clientside.no_update; }
        const base = window.location.pathname.replace(/\\/user(\\/.*)?$/, "");
        const target = base + "/user/" + encodeURIComponent(customer.user_id);
        if (window.location.pathname !== target) { window.history.pushState(null, "", target); }
        return window.dash_clientside.no_update;
    }""",
    Output("cu-url", "children"),
    Input("cu-customer", "data"),
)


@callback(
    Output({"type": REASONS, "item": ALL}, "children"),
    Input("cu-customer", "data"),
)
def _on_customer(customer: dict[str, Any] | None) -> list[Any]:
    if not customer:
        raise PreventUpdate
    item_ids = [spec["id"]["item"] for spec in ctx.outputs_list]
    if not item_ids:
        raise PreventUpdate
    settings = current_settings()
    return guarded("customer lookup: reasons", lambda: reasons(customer, item_ids, settings),
                    lambda message: [html.Div(sentence(message), className="rs-reason-note")] * len(item_ids))


@callback(
    Output("cu-why-modal", "is_open"), Output("cu-why-title", "children"), Output("cu-why-body", "children"),
    Input({"type": WHY, "item": ALL}, "n_clicks"),
    State("cu-customer", "data"),
    prevent_initial_call=True,
)
def _on_why(_clicks: list[int | None], customer: dict[str, Any] | None) -> tuple[bool, Any, Any]:
    if not _clicked() or not isinstance(ctx.triggered_id, dict):
        raise PreventUpdate
    item_id = ctx.triggered_id.get("item")
    settings = current_settings()
    view = guarded("customer lookup: why", lambda: why(customer, item_id, settings),
                    lambda message: WhyView("Why this item?", _alert(message, "warning", "cu-why-problem")))
    return True, view.title, view.body


@callback(
    Output("cu-compare-body", "children"),
    Input("cu-compare-go", "n_clicks"),
    State("cu-compare-a", "value"), State("cu-compare-b", "value"), State("cu-customer", "data"),
    prevent_initial_call=True,
)
def _on_compare(_clicks: int | None, item_a: str | None, item_b: str | None, customer: dict[str, Any] | None) -> Any:
    if not _clicked():
        raise PreventUpdate
    settings = current_settings()
    return guarded("customer lookup: compare", lambda: compare(customer, item_a, item_b, settings),
                    lambda message: _alert(message, "warning", "cu-compare-problem"))


@callback(
    Output("cu-download", "data"), Output("cu-export-status", "children"),
    *(Input(f"cu-export-{fmt}", "n_clicks") for fmt in EXPORT_FORMATS),
    State("cu-customer", "data"),
    prevent_initial_call=True,
)
def _on_export(*args: Any) -> tuple[Any, Any]:
    if not _clicked() or not isinstance(ctx.triggered_id, str):
        raise PreventUpdate
    fmt = ctx.triggered_id.removeprefix("cu-export-")
    customer = args[-1]
    settings = current_settings()

    def run() -> tuple[Any, Any]:
        payload = export(customer, fmt, settings)
        return payload, f"{EXPORT_FORMATS[fmt][0]} report downloaded."

    return guarded("customer lookup: export", run, lambda message: (dash.no_update, sentence(message)))
