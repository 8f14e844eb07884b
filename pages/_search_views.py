"""The search page's views: pure builders of Dash components from a search's JSON
(:func:`workflows.search.search_payload`), so a browser and a test get the same components.

Each result shows its title with the query's words marked where the title holds them, the first
reason, and a "Why?" button; the dialog shows every reason, the two sides' shares of the score
("matches the query", "fits this customer"), the words matched per field, and the contributions.
"""

from __future__ import annotations

import re
from typing import Any

import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard.explanation_figures import search_contributions
from pages._parts import GRAPH_CONFIG

__all__ = ["WHY", "results_column", "why_view", "marked_title"]

WHY = "se-why"  # pattern-matching id type of the results' "Why?" buttons


def results_column(side: str, heading: str, payload: dict[str, Any], anonymous_ranks: dict[str, int] | None,
                   why_type: str = WHY) -> Any:
    """One column of results; ``anonymous_ranks`` (item -> rank without the customer) adds how far
    personalisation moved each result; ``why_type`` is the id type of the Why? buttons (each page
    its own, so one page's clicks never reach another page's dialog)."""
    items = payload["items"]
    body: list[Any] = [html.H2(heading, className="rs-section-title")]
    if payload.get("truncated"):
        body.append(html.P("Only the first part of a very long query was searched.", className="rs-table-note"))
    if not items:
        body.append(html.Div("Nothing found for this query.", className="rs-empty", id=f"se-{side}-empty"))
    body += [_result(side, item, anonymous_ranks, why_type) for item in items]
    return html.Div(className="rs-search-column", id=f"se-{side}", children=body)


def _result(side: str, item: dict[str, Any], anonymous_ranks: dict[str, int] | None, why_type: str) -> Any:
    explanation = item.get("explanation") or {}
    title_words = next((m["words"] for m in explanation.get("matched", []) if m["field"] == "title"), [])
    moved = None
    if anonymous_ranks is not None:
        before = anonymous_ranks.get(item["item_id"])
        moved = html.Span("new here" if before is None else
                          f"up {before - item['rank']}" if before > item["rank"] else
                          f"down {item['rank'] - before}" if before < item["rank"] else "same place",
                          className="rs-search-move", title="Its place in the anonymous results")
    reasons = explanation.get("reasons") or []
    return html.Div(className="rs-search-result", id=f"se-{side}-{item['rank']}", children=[
        html.Div(className="rs-search-head", children=[
            html.Span(f"#{item['rank']}", className="rs-rank me-2"),
            html.Span(marked_title(item["title"], title_words), className="rs-item-title"),
            moved,
        ]),
        html.Div(reasons[0] if reasons else "", className="rs-item-reasons"),
        html.Div(className="rs-search-foot", children=[
            html.Span(item["item_id"], className="rs-item-meta"),
            dbc.Button("Why?", id={"type": why_type, "side": side, "item": item["item_id"]}, color="link", size="sm",
                       n_clicks=0, className="rs-why-button"),
        ]),
    ])


def marked_title(title: str, words: list[str]) -> list[Any]:
    """The title with each matched word wrapped in ``<mark>`` (case as the title writes it)."""
    if not words:
        return [title]
    pattern = re.compile("|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True)))
    out: list[Any] = []
    at = 0
    for match in pattern.finditer(title):
        out += [title[at:match.start()], html.Mark(match.group(0))]
        at = match.end()
    out.append(title[at:])
    return [part for part in out if part != ""]


def why_view(item: dict[str, Any], personalised: bool) -> tuple[Any, Any]:
    """The "Why?" dialog's title and body for one result of a search payload."""
    explanation = item.get("explanation") or {}
    title = [html.Span(f"#{item['rank']}", className="rs-rank me-2"), f"Why “{item['title']}”?"]
    matched = explanation.get("matched", [])
    body = html.Div(className="rs-why", children=[
        html.Div(className="rs-why-reasons", children=[
            html.H3("In words", className="rs-card-title mb-2"),
            html.Ul([html.Li(text) for text in explanation.get("reasons", [])], className="rs-reasons",
                    id="se-why-reasons"),
            html.H3("Query words it matched", className="rs-card-title mt-3 mb-2"),
            html.Ul([html.Li([f"{m['field']}: ", *_joined([html.Mark(w) for w in m["words"]])])
                     for m in matched], id="se-why-matched", className="rs-reasons")
            if matched else html.P("None: it was found by meaning alone.", id="se-why-matched",
                                   className="rs-reason-note"),
        ]),
        html.Div(className="rs-why-figures", children=[
            dcc.Graph(id="se-why-contributions", figure=search_contributions(explanation, personalised),
                      config=GRAPH_CONFIG),
        ]),
        html.P(f"Scores are the search ranker's raw units: the base value {explanation.get('base_value', 0):.3f} "
               f"plus the contributions gives {item['score']:.3f}.", className="rs-table-note mt-2"),
    ])
    return title, body


def _joined(parts: list[Any]) -> list[Any]:
    out: list[Any] = []
    for n, part in enumerate(parts):
        out += [", "] if n else []
        out.append(part)
    return out
