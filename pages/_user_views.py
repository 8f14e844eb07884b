"""The customer lookup's views: pure builders of Dash components from what
:mod:`workflows.lookup` found (the profile card, the item cards, the result area, the messages).

No callbacks and no data access here: :mod:`pages._user_callbacks` calls these with the data it
got, so each view is built the same way whether a browser or a test asked. Ids and class names
are what the browser tests look for.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html

from analytics import schema as s
from analytics.profile_card import ProfileCard
from dashboard.customer_view import timeline_figure
from dashboard.explanation_figures import comparison_bars, history_attributions, match_movers, shap_waterfall
from dashboard.money import format_money
from dashboard.theme import PRIMARY
from explain.changes import Changes, ago, did
from explain.types import Comparison, ItemExplanation
from models.recommendation import match_words
from pages._parts import capitalised, card, field, graph, sentence
from pages._rules_parts import rule_note
from pages._user_preview import open_button
from pages._user_whatif import section as whatif_section
from workflows.lookup import Found

__all__ = [
    "EXPORT_FORMATS", "WHY", "REASONS", "LIVE_TICK", "LIVE_TICK_MS", "OpenComparison", "result_view",
    "found_children", "changes_panel",
    "not_found_view", "why_view", "counterfactual_box",
    "comparison_view", "alert",
]

EXPORT_FORMATS: dict[str, tuple[str, str]] = {  # format -> (button label, MIME type)
    "html": ("HTML", "text/html"), "pdf": ("PDF", "application/pdf"), "csv": ("CSV", "text/csv"),
}
WHY, REASONS = "cu-why", "cu-reasons"  # pattern-matching id types
LIVE_TICK = "cu-live-tick"
LIVE_TICK_MS = 5_000  # how often an open customer page asks whether the customer has new events


class OpenComparison(NamedTuple):
    """The comparison an agent has open when the page refreshes by itself: the two items picked
    and what the comparison showed (the page's own components, handed back as they are)."""

    item_a: str | None
    item_b: str | None
    body: Any


def result_view(store: dict[str, Any], found: Found, changes: Changes | None = None, raw_units: bool = False) -> Any:
    """The result area of a lookup: profile, timeline, the item cards, export and compare; the
    live tick and, after a refresh, what changed (``found_children`` alone is what a refresh
    replaces, so the search and the result area's loading overlay stay as they are)."""
    return html.Div(id="cu-found", children=found_children(store, found, changes, raw_units=raw_units))


def found_children(store: dict[str, Any], found: Found, changes: Changes | None = None,
                   comparison: OpenComparison | None = None, raw_units: bool = False) -> list[Any]:
    """The parts of :func:`result_view`, for the first lookup and for each live refresh; a refresh
    keeps the ``comparison`` the agent had open (see :func:`_compare_section`). ``raw_units``: show
    the ranker's raw scores too (the analyst's side; an agent sees the match strength only)."""
    items, details = found.items, found.details
    notes = []
    if found.cold_start:
        notes.append(alert(
            "New customer: there is no behaviour to personalise from yet, so the list shows the shop's "
            "popular items and the reasons describe popularity, not this customer's taste.", "info", "cu-cold-start"))
    if found.serving:  # the customer's experiment variant ranks this list (workflows.variants)
        notes.append(alert(found.serving, "secondary", "cu-variant"))
    return [
        dcc.Interval(id=LIVE_TICK, interval=LIVE_TICK_MS, n_intervals=0),  # only while a customer is shown
        *notes,
        changes_panel(changes) if changes is not None else html.Div(id="cu-changes", hidden=True),
        dbc.Row(className="g-3", children=[
            dbc.Col(_profile(found.card, found.currency), lg=4),
            dbc.Col(card("Behaviour over time", "Each mark is one event; hover for the item",
                         graph("cu-timeline", 360, timeline_figure(found.timeline, found.total_events, 360,
                                                                    currency=found.currency))), lg=8),
        ]),
        html.Div(className="rs-section-head", children=[
            html.H2(f"Top {len(items)} recommendations" if items else "Recommendations", className="rs-section-title"),
            dcc.Link("Search as this customer", href=f"/search?user={store['user_id']}", id="cu-search-as",
                     className="rs-link"),
            open_button(disabled=not items),
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
        html.Div(className="rs-items", id="cu-items", children=[
            _item_card(item, details.get(item.item_id), raw_units, found.currency) for item in items])
        if items else html.Div("The model has no items to recommend to this customer.", className="rs-empty"),
        *_compare_section(store, comparison),
        *whatif_section(found),
    ]


def _compare_section(store: dict[str, Any], comparison: OpenComparison | None) -> list[Any]:
    """"Compare two items": the two pickers and the result. After a refresh the agent's picks stay
    while both items are still listed, and an open result stays too, marked as made before the
    refresh (the scores moved; comparing again is one click), rather than vanishing mid-call."""
    options = [{"label": f"#{rank} {title}", "value": item_id} for item_id, title, rank in store["items"]]
    listed = [option["value"] for option in options]
    picks = [listed[0] if listed else None, listed[1] if len(listed) > 1 else None]
    body: list[Any] = []
    if comparison is not None:
        kept = comparison.item_a in listed and comparison.item_b in listed
        if kept:
            picks = [comparison.item_a, comparison.item_b]
        if comparison.body:
            body = ([html.Div("Compared before the list refreshed: press Compare for the current scores.",
                              id="cu-compare-stale", className="rs-table-note"), comparison.body] if kept
                    else [html.Div("An item you compared left the list when it refreshed.",
                                   id="cu-compare-stale", className="rs-table-note")])
    return [
        html.Div(className="rs-section-head", children=[html.H2("Compare two items", className="rs-section-title")]),
        html.Div(className="rs-filters rs-compare", children=[
            field("Item A", "cu-compare-a", dcc.Dropdown(id="cu-compare-a", options=options, clearable=False,
                                                         value=picks[0])),
            field("Item B", "cu-compare-b", dcc.Dropdown(id="cu-compare-b", options=options, clearable=False,
                                                         value=picks[1])),
            html.Div(className="rs-field", children=[
                html.Span("Why A and not B?", className="rs-field-label"),
                dbc.Button("Compare", id="cu-compare-go", color="primary", size="sm", n_clicks=0,
                           disabled=len(options) < 2),
            ]),
        ]),
        dcc.Loading(html.Div(id="cu-compare-body", children=body), type="dot", color=PRIMARY),
    ]


def changes_panel(changes: Changes) -> Any:
    """"What changed since you last looked": the new events (relative time, the absolute one on
    hover), then each item that entered, left or moved with the sentence saying why."""
    def when(ts: datetime) -> html.Span:
        return html.Span(ago(ts, changes.now), title=f"{ts:%d %b %Y %H:%M:%S} UTC", className="rs-change-when")

    events = [html.Li([f"{capitalised(did(e.event_type, e.title))}, ", when(e.ts)], className="rs-change-event")
              for e in reversed(changes.new_events)]
    moves = [html.Li(m.sentence, className=f"rs-change rs-change-{m.kind}", id=f"cu-change-{m.kind}-{n}")
             for kind in (changes.entered, changes.left, changes.moved) for n, m in enumerate(kind)]
    body = [
        html.Div("New events", className="rs-field-label"),
        html.Ul(events or [html.Li("none", className="rs-table-note")], id="cu-changes-events"),
        html.Div("The list", className="rs-field-label mt-2"),
        html.Ul(moves, id="cu-changes-moves") if moves else html.P(
            "The list did not change: the new events moved no item in or out.", id="cu-changes-moves",
            className="rs-table-note"),
    ]
    return html.Div(id="cu-changes", className="mb-3", children=card(
        "What changed since you last looked",
        f"{len(changes.new_events)} new event{'s' if len(changes.new_events) != 1 else ''}; each move is read off the "
        "difference between the list's explanations then and now", body))


def _item_card(item: Any, detail: tuple[Any, Any, Any] | None, raw_units: bool, currency: str) -> html.Div:
    """One recommended item; its reasons arrive later (``REASONS`` is filled by a callback)."""
    category, brand, price = detail or (None, None, None)
    measures = []
    if item.strength is not None:
        measures.append(html.Div(f"{capitalised(match_words(item.strength))} · {item.strength}",
                                 className="rs-item-strength",
                                 title=f"Match strength {item.strength} of 100: a stronger match than {item.strength}% "
                                       "of the recommendations this model makes"))
    if raw_units and not getattr(item, "added", False):  # an item a rule added has no model score
        measures.append(html.Div(f"score {item.score:.3f}", className="rs-item-score",
                                 title="ranker score (raw units)"))
    shown_price = None if price is None else format_money(price, currency)
    meta = [part for part in (s.category_leaf(category), brand, shown_price) if part]
    return html.Div(className="rs-item", id=f"cu-item-{item.rank}", children=[
        html.Div(className="rs-item-head", children=[
            html.Span(f"#{item.rank}", className="rs-rank"),
            html.Div(className="rs-item-name", children=[
                html.Div(item.title, className="rs-item-title", title=item.title),
                html.Div(" · ".join(meta + [item.item_id]), className="rs-item-meta"),
            ]),
            html.Div(measures, className="rs-item-measures"),
        ]),
        rule_note(item, f"cu-item-rule-{item.rank}"),  # what the shop's rules did, apart from the model's reasons
        html.Div(id={"type": REASONS, "item": item.item_id}, className="rs-item-reasons", children=[
            dbc.Spinner(size="sm", color="secondary", spinner_class_name="me-2"),
            html.Span("Finding the reasons…", className="rs-reason-note"),
        ]),
        html.Div(className="rs-item-foot", children=[
            dbc.Button("Why?", id={"type": WHY, "item": item.item_id}, color="link", size="sm",
                       className="rs-why-button", n_clicks=0),
        ]),
    ])


def _profile(profile: ProfileCard, currency: str) -> dbc.Card:
    """The profile card: who the customer is to the shop, or why there is nothing to show."""
    head = html.Div(className="rs-profile-head", children=[
        html.Div([html.Div("Customer", className="rs-field-label"),
                  html.Div(profile.user_id, className="rs-pseudonym", id="cu-pseudonym")]),
        dbc.Badge(capitalised(profile.segment) if profile.segment else "No segment", color="light",
                  className="rs-segment", id="cu-segment"),
    ])
    if not profile.has_profile:
        return card("Profile", None, [head, html.P(
            "No profile yet: this customer has no recorded behaviour, or the shop's profiles were not "
            "built (python cli.py ingest builds them).", className="rs-empty")])
    purchases = profile.counts.get(s.PURCHASE, 0)
    stats = [
        ("Events", f"{profile.events:,}", f"{profile.sessions:,} sessions"),
        ("Purchases", f"{purchases:,}", f"on {profile.frequency:,} days"),
        ("Net spend", "—" if profile.monetary is None else format_money(profile.monetary, currency),
         "purchases minus returns"),
        ("Last purchase", "never" if profile.recency_days is None else _days(profile.recency_days),
         "" if profile.conversion_rate is None else f"{profile.conversion_rate:.1%} of views bought"),
    ]
    r, f, m = profile.rfm
    return card("Profile", _active(profile), [
        head,
        html.Div(className="rs-stats", children=[
            html.Div(className="rs-stat", children=[html.Div(label, className="rs-kpi-label"),
                                                   html.Div(value, className="rs-stat-value"),
                                                   html.Div(caption, className="rs-kpi-caption")])
            for label, value, caption in stats
        ]),
        html.Div(f"RFM scores: recency {r or '–'} · frequency {f or '–'} · monetary {m or '–'} (1–5)",
                 className="rs-table-note mb-2"),
        _shares("Favourite categories", profile.top_categories, leaf=True),
        _shares("Favourite brands", profile.top_brands),
        html.Div(className="rs-price-band", children=[
            html.Div("Price band", className="rs-field-label"),
            html.Div(_band("Views", profile.view_prices, currency)),
            html.Div(_band("Purchases", profile.buy_prices, currency)),
        ]),
    ])


def _shares(title: str, shares: list[tuple[str, float]], leaf: bool = False) -> html.Div:
    rows = [html.Div(className="rs-share", children=[
        html.Span(s.category_leaf(name) if leaf else name, className="rs-share-name", title=name),
        html.Span(className="rs-share-bar", children=html.Span(style={"width": f"{share:.0%}"})),
        html.Span(f"{share:.0%}", className="rs-share-value"),
    ]) for name, share in shares]
    return html.Div(className="rs-shares", children=[
        html.Div(title, className="rs-field-label"),
        *(rows or [html.Div("none yet", className="rs-table-note")]),
    ])


def _band(label: str, band: tuple[float, float, float] | None, currency: str) -> str:
    if band is None:
        return f"{label}: no prices yet"
    low, mid, high = (format_money(value, currency) for value in band)
    return f"{label}: {low} – {high} (median {mid})"


def _active(profile: ProfileCard) -> str | None:
    if profile.first_active is None or profile.last_active is None:
        return None
    return f"Active {profile.first_active:%d %b %Y} – {profile.last_active:%d %b %Y}"


def _days(days: float) -> str:
    if days < 1:
        return "today"
    whole = int(days)
    return f"{whole} day{'s' if whole != 1 else ''} ago"


def why_view(item: ItemExplanation, counterfactual: Any, raw_units: bool = False) -> tuple[Any, Any]:
    """The "Why?" dialog's title and body for one item: its reasons, the counterfactual box, what
    moved its match (the SHAP waterfall in raw units for the analyst's side, the same contributions
    as shares for an agent) and the history events with their attributions and attention weights."""
    title: list[Any] = [html.Span(f"#{item.rank}", className="rs-rank me-2"), f"Why “{item.title}”?"]
    body = html.Div(className="rs-why", children=[
        html.Div(className="rs-why-reasons", children=[
            html.H3("In words", className="rs-card-title mb-2"),
            html.Ul([html.Li(text) for text in item.reasons], className="rs-reasons", id="cu-why-reasons")
            if item.reasons else html.P("No single strong reason: several small signals add up.",
                                        id="cu-why-reasons", className="rs-reason-note"),
            rule_note(item, "cu-why-rules"),
            counterfactual,
        ]),
        html.Div(className="rs-why-figures", children=[
            graph("cu-why-waterfall", figure=shap_waterfall(item) if raw_units else match_movers(item)),
            graph("cu-why-history", figure=history_attributions(item)),
        ]),
        html.P(_why_note(item, raw_units), className="rs-table-note mt-2", id="cu-why-note"),
    ])
    return title, body


def _why_note(item: ItemExplanation, raw_units: bool) -> str:
    """How to read the dialog: for an agent in words, with the raw units only on the analyst's side."""
    share = f"What your recent browsing says you like carries {item.attention_share:.0%} of what moved it"
    if not raw_units:
        return f"Each bar is one signal's share of everything that moved this item's match. {share}."
    return (f"Scores are the ranker's raw units: the base value plus the contributions gives {item.score:.3f}. "
            f"{share}; its history attributions are complete to {abs(item.convergence_delta):.1e}.")


def counterfactual_box(text: str, hint: str | None, verified: bool | None) -> html.Div:
    """What would change the item's place: the sentence, the raise hint, whether it was verified."""
    badge = None if verified is None else dbc.Badge("verified by re-scoring" if verified else "estimate",
                                                    color="success" if verified else "secondary",
                                                    className="ms-2 fw-normal")
    return html.Div(className="rs-counterfactual", id="cu-why-counterfactual", children=[
        html.Div(["What would change it", badge], className="rs-field-label mb-1"),
        html.Div(text),
        html.Div(hint, className="rs-table-note mt-1") if hint else None,
    ])


def comparison_view(comparison: Comparison) -> html.Div:
    """Why item A and not item B: the summary sentences and the contribution differences."""
    return html.Div(id="cu-comparison", children=[
        html.Ul([html.Li(text) for text in comparison.summary], className="rs-reasons", id="cu-compare-summary"),
        graph("cu-compare-figure", figure=comparison_bars(comparison)),
    ])


def not_found_view(message: str, suggestions: list[str]) -> html.Div:
    """Nobody matched: why, and the pseudonyms the agent may have meant (links to their lookups)."""
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


def alert(message: str, color: str, alert_id: str | None = None) -> dbc.Alert:
    """A message on the lookup page, as a sentence (``cu-alert`` unless a test needs its own id)."""
    return dbc.Alert(sentence(message), color=color, className="rs-alert", id=alert_id or "cu-alert")
