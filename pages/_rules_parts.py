"""What the customer page shows of the merchandising rules: one line per item a rule touched.

Kept apart from the model's reasons on purpose: the reasons say why the model ranked an item, this
line says what the shop's rules then did to it ("Moved from #7 to #2 by rule 'Winter tents', ana,
1 Dec"). The customer page's item cards and "Why?" dialog call :func:`rule_note`.
"""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import html

from models.rules import rule_lines
from workflows.merchandising import utc_now

__all__ = ["rule_note", "ADDED_NOTE"]

ADDED_NOTE = "Put here by a merchandising rule: the model did not rank it for this customer."


def rule_note(item: Any, note_id: str | None = None) -> html.Div | None:
    """The rule line of a list item or an explanation (None when no rule touched it)."""
    lines = rule_lines(item, utc_now())
    if not lines:
        return None
    return html.Div([dbc.Badge("Rule", color="warning", text_color="dark", className="me-1"), " ".join(lines)],
                    className="rs-reason-note rs-item-rule", **({"id": note_id} if note_id else {}))
