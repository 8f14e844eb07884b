"""The Experiments page's form for a new experiment: its components, and reading what was typed
into an :class:`~analytics.experiments_store.Experiment` (one clear line for what does not read).

Variants are rows of the form (:data:`VARIANT_ROWS`; a row without a name is unused): a name, a
share in percent, the model version (the models folder's versions, or "current") and the rule-set
version (the saved rule sets, or "current"). Times are typed in UTC (``YYYY-MM-DD HH:MM``); an
empty start is "now". The leading underscore keeps Dash's page scanner away.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import dash_bootstrap_components as dbc
from dash import dcc, html

from analytics.experiments_store import METRICS, Experiment, Variant
from dashboard.experiments_view import METRIC_LABELS
from errors import RecsightError
from workflows.experiments import Choices

__all__ = ["VARIANT_ROWS", "CURRENT", "FORM_FIELDS", "form", "read_form", "variant_ids"]

VARIANT_ROWS = 4
CURRENT = ""  # the dropdowns' "current model" / "current rules"
FORM_FIELDS = ("ex-id", "ex-name", "ex-hypothesis", "ex-metric", "ex-start", "ex-stop-at")
_TIME_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d")


def variant_ids(row: int) -> tuple[str, str, str, str]:
    """The ids of one variant row's name, share, model and rules controls."""
    return (f"ex-v{row}-name", f"ex-v{row}-share", f"ex-v{row}-model", f"ex-v{row}-rules")


def form(found: Choices) -> html.Div:
    """The empty form: control and one treatment filled in, 50 % each, both on the current model."""
    models = [{"label": "Current model" + (f" ({found.current_model})" if found.current_model else ""),
               "value": CURRENT}] + [{"label": v, "value": v} for v in found.models]
    rules = [{"label": "Current rules" + (f" ({found.current_rules})" if found.current_rules else ""),
              "value": CURRENT}] + [{"label": f"Rule set {v}", "value": v} for v in found.rules]
    rows = []
    for row in range(VARIANT_ROWS):
        name, share, model, rule = variant_ids(row)
        rows.append(html.Div(className="rs-filters rs-variant-row", children=[
            _field("Variant" if row else "Variant (control)", name,
                   dcc.Input(id=name, type="text", value=("control", "treatment", "", "")[row], maxLength=32,
                             className="form-control", placeholder="unused" if row > 1 else None)),
            _field("Share %", share, dcc.Input(id=share, type="number", min=0, max=100, step="any",
                                               value=50 if row < 2 else None, className="form-control")),
            _field("Model version", model, dcc.Dropdown(id=model, options=models, value=CURRENT, clearable=False)),
            _field("Rule set", rule, dcc.Dropdown(id=rule, options=rules, value=CURRENT, clearable=False)),
        ]))
    return html.Div(id="ex-form", children=[
        html.Div(className="rs-filters", children=[
            _field("Id", "ex-id", dcc.Input(id="ex-id", type="text", maxLength=40, className="form-control",
                                            placeholder="e.g. ranker-vs-hybrid")),
            _field("Name", "ex-name", dcc.Input(id="ex-name", type="text", maxLength=80, className="form-control")),
            _field("Primary metric", "ex-metric", dcc.Dropdown(
                id="ex-metric", value=METRICS[0], clearable=False,
                options=[{"label": METRIC_LABELS[m], "value": m} for m in METRICS])),
        ]),
        _field("Hypothesis", "ex-hypothesis", dcc.Textarea(
            id="ex-hypothesis", maxLength=2000, className="form-control", style={"height": "4.5em"},
            placeholder="What should change, for whom, and by how much (e.g. the hybrid lifts click-through by 5 %)")),
        *rows,
        html.Div(className="rs-filters", children=[
            _field("Start (UTC)", "ex-start", dcc.Input(id="ex-start", type="text", className="form-control",
                                                         placeholder="now, or YYYY-MM-DD HH:MM")),
            _field("Stop (UTC)", "ex-stop-at", dcc.Input(id="ex-stop-at", type="text", className="form-control",
                                                       placeholder="none, or YYYY-MM-DD HH:MM")),
        ]),
        dbc.Button("Create experiment", id="ex-create", color="primary", n_clicks=0, className="rs-action"),
        html.Div(id="ex-create-status"),
    ])


def _field(label: str, target: str, control: Any) -> html.Div:
    return html.Div(className="rs-field rs-field-grow", children=[
        html.Label(label, className="rs-field-label", htmlFor=target), control])


def read_form(values: dict[str, Any], variants: list[tuple[Any, Any, Any, Any]], now: datetime) -> Experiment:
    """The experiment the form describes; one RecsightError line for what does not read (the
    store checks the rest: shares adding up, names, versions, the one-at-a-time rule)."""
    chosen = []
    for name, share, model, rules in variants:
        if not isinstance(name, str) or not name.strip():
            continue
        chosen.append(Variant(name.strip(), _share(name.strip(), share), model or None, rules or None))
    start = _time(values.get("ex-start"), "start") or now
    return Experiment(id=_text(values.get("ex-id")), name=_text(values.get("ex-name")),
                      hypothesis=_text(values.get("ex-hypothesis")), metric=_text(values.get("ex-metric")),
                      variants=tuple(chosen), start=start, stop=_time(values.get("ex-stop-at"), "stop"))


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _share(name: str, value: Any) -> float:
    """A share typed in percent, as a fraction."""
    try:
        percent = float(value)
    except (TypeError, ValueError):
        raise RecsightError(f"variant {name[:32]}: give its share in percent (e.g. 50)") from None
    if not math.isfinite(percent) or not 0 < percent <= 100:
        raise RecsightError(f"variant {name[:32]}: a share is a percentage above 0 and at most 100")
    return percent / 100


def _time(value: Any, what: str) -> datetime | None:
    """A typed UTC time (``YYYY-MM-DD HH:MM``); None when empty."""
    text = value.strip() if isinstance(value, str) else ""
    if not text or text.lower() in ("now", "none"):
        return None
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(text[:16], fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise RecsightError(f"the {what} is not a time like 2025-03-01 09:00 (UTC)")
