"""What the Experiments page shows, as pure functions of the definitions and the analysis
(:class:`workflows.experiments.ExperimentReport` arrives here as plain objects, never imported:
the dashboard sits below the use cases): the list of experiments, what each variant serves, the
per-variant table with 95 % intervals, the two figures (the metric per variant, the lift against
the control) and the plain-language lines (sample ratio, CUPED, sample size, verdict).

Tables come as :class:`~dashboard.csv_tables.ShownTable` so the page shows and downloads the same
rows; the numbers in them are plain values (shares 0-1, the metric in its own unit), the page
formats them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import plotly.graph_objects as go

from analytics.experiments_store import DRAFT, RUNNING, STOPPED, Experiment, Variant
from dashboard.csv_tables import ShownTable, table_from_rows
from dashboard.money import format_money, money_label
from dashboard.theme import DIMMED, MUTED, NEGATIVE, POSITIVE, PRIMARY, empty_figure, style

__all__ = [
    "METRIC_LABELS", "STATUS_LABELS", "serves", "experiments_table", "history_table", "format_value",
    "variant_table", "display_rows", "metric_figure", "lift_figure", "notes",
]

METRIC_LABELS = {"click_through": "Click-through", "conversion": "Conversion",
                 "revenue_per_mille": "Revenue per 1,000 impressions"}
STATUS_LABELS = {DRAFT: "Scheduled", RUNNING: "Running", STOPPED: "Stopped"}
_PERCENT_METRICS = ("click_through", "conversion")


def serves(variant: Variant) -> str:
    """What a variant serves, in words: "model 20250301-…, rule set v3" or "current model, current rules"."""
    model = f"model {variant.model_version}" if variant.model_version else "current model"
    rules = f"rule set {variant.rules_version}" if variant.rules_version else "current rules"
    return f"{model}, {rules}"


def _when(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%d %H:%M")


def experiments_table(experiments: Sequence[Experiment], now: datetime) -> ShownTable:
    """One row per experiment: id, name, status at ``now``, metric, variants with shares, start,
    stop (UTC), and who changed it last."""
    rows = [(e.id, e.name, STATUS_LABELS[e.status(now)], METRIC_LABELS.get(e.metric, e.metric),
             " / ".join(f"{v.name} {v.share:.0%}" for v in e.variants), _when(e.start), _when(e.stop),
             f"{e.author}, v{e.version}") for e in experiments]
    return table_from_rows(("Id", "Name", "Status", "Primary metric", "Variants", "Start (UTC)", "Stop (UTC)",
                            "Last change"), rows)


def history_table(versions: Sequence[Experiment]) -> ShownTable:
    """Every version of one experiment, newest first: who changed what, when."""
    rows = [(v.version, _when(v.changed), v.author, v.change, _when(v.start), _when(v.stop),
             "; ".join(f"{x.name} {x.share:.0%}: {serves(x)}" for x in v.variants)) for v in reversed(versions)]
    return table_from_rows(("Version", "Changed (UTC)", "By", "Change", "Start (UTC)", "Stop (UTC)", "Variants"),
                           rows)


def format_value(metric: str, value: float | None, currency: str) -> str:
    """A metric value as the page writes it: percentages for rates, money per thousand for RPM."""
    if value is None:
        return "–"
    if metric in _PERCENT_METRICS:
        return f"{value * 100:.2f} %"
    return format_money(value, currency)


def _lift(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:+.1f} %"


def variant_table(report: Any, currency: str) -> ShownTable | None:
    """Per variant: what it serves, planned and observed share of customers, customers, the metric
    with its 95 % interval, and against the control the lift with its interval and the p-value.
    None until the report has an analysis."""
    analysis = report.analysis
    if analysis is None:
        return None
    e: Experiment = report.experiment
    label = METRIC_LABELS.get(e.metric, e.metric)
    if e.metric not in _PERCENT_METRICS:
        label = money_label(label, currency)
    total = sum(report.counts.values())
    against = {c.variant: c for c in analysis.comparisons}
    rows = []
    for summary in analysis.summaries:
        variant = e.variant(summary.variant)
        c = against.get(summary.variant)
        rows.append((summary.variant + (" (control)" if summary.variant == analysis.control else ""), serves(variant),
                     variant.share, summary.customers / total if total else None, summary.customers,
                     summary.value, summary.low, summary.high,
                     None if c is None else c.lift, None if c is None else c.lift_low,
                     None if c is None else c.lift_high, None if c is None else c.p_adjusted))
    return table_from_rows(("Variant", "Serves", "Planned share", "Share of customers", "Customers", label,
                            "95 % low", "95 % high", "Lift vs control", "Lift 95 % low", "Lift 95 % high",
                            "p-value"), rows)


def metric_figure(report: Any, currency: str, height: int = 300) -> go.Figure:
    """The metric per variant with its 95 % interval (the control in the main colour)."""
    analysis = report.analysis
    if analysis is None:
        return empty_figure(report.message or "No figures yet", height)
    e: Experiment = report.experiment
    fig = go.Figure()
    for s in analysis.summaries:
        colour = PRIMARY if s.variant == analysis.control else MUTED
        shown = format_value(e.metric, s.value, currency)
        fig.add_trace(go.Scatter(
            x=[s.value], y=[s.variant], mode="markers", marker={"size": 11, "color": colour},
            error_x={"type": "data", "symmetric": False, "array": [s.high - s.value], "arrayminus": [s.value - s.low],
                     "color": colour, "thickness": 2, "width": 6},
            hovertemplate=(f"{s.variant}: {shown} (95 % interval {format_value(e.metric, s.low, currency)} to "
                           f"{format_value(e.metric, s.high, currency)}), {s.customers:,} customers<extra></extra>")))
    style(fig, height)
    fig.update_yaxes(autorange="reversed", type="category")
    if e.metric in _PERCENT_METRICS:
        fig.update_xaxes(tickformat=".1%", title_text=METRIC_LABELS[e.metric])
    else:
        fig.update_xaxes(title_text=money_label(METRIC_LABELS.get(e.metric, e.metric), currency))
    return fig


def lift_figure(report: Any, height: int = 240) -> go.Figure:
    """Each variant's lift against the control with its 95 % interval, and the line of no change:
    an interval that crosses it is no evidence either way."""
    analysis = report.analysis
    if analysis is None or not analysis.comparisons:
        return empty_figure(report.message or "No comparison yet", height)
    fig = go.Figure()
    for c in analysis.comparisons:
        if c.lift is None:
            continue
        clear = c.p_adjusted < 0.05
        colour = (POSITIVE if c.lift > 0 else NEGATIVE) if clear else DIMMED
        fig.add_trace(go.Scatter(
            x=[c.lift], y=[c.variant], mode="markers", marker={"size": 11, "color": colour},
            error_x={"type": "data", "symmetric": False, "array": [c.lift_high - c.lift],
                     "arrayminus": [c.lift - c.lift_low], "color": colour, "thickness": 2, "width": 6},
            hovertemplate=(f"{c.variant} against {c.control}: {_lift(c.lift)} (95 % interval {_lift(c.lift_low)} to "
                           f"{_lift(c.lift_high)}), p = {c.p_adjusted:.3f}<extra></extra>")))
    style(fig, height)
    fig.add_vline(x=0, line_color=MUTED, line_dash="dot")
    fig.update_xaxes(tickformat="+.0%", title_text=f"Lift against {analysis.control}")
    fig.update_yaxes(autorange="reversed", type="category")
    return fig


def notes(report: Any) -> list[str]:
    """The plain-language lines under the figures: data quality first (customers left out, the
    sample ratio), then CUPED, the sample size, and the verdict (one line per comparison)."""
    lines = []
    if report.mixed:
        lines.append(f"{report.mixed:,} customers were shown more than one variant and are left out: "
                     "check that the shop sends the variant the recommendations API named.")
    if report.unknown:
        lines.append(f"{report.unknown:,} customers have impressions naming a variant this experiment does not "
                     "have; those impressions are left out.")
    analysis = report.analysis
    if analysis is None:
        return lines + ([report.message] if report.message else [])
    srm = analysis.srm
    split = " / ".join(f"{share * 100:.1f} %" for share in srm.shares)
    planned = " / ".join(f"{share * 100:.0f} %" for share in srm.planned)
    lines.append(f"Sample ratio: {split} of customers against a planned {planned} (p = {srm.p_value:.3g}): "
                 + ("a mismatch, so assignment or logging is broken." if srm.flagged else "as planned."))
    reductions = [c.variance_reduction for c in analysis.comparisons if c.variance_reduction is not None]
    if report.cuped and reductions:
        lines.append(f"CUPED: the customers' behaviour in the four weeks before the start removed "
                     f"{max(0.0, min(reductions)) * 100:.0f} % of the variance, so the intervals are that much "
                     "narrower for the same customers.")
    elif not report.cuped:
        lines.append("CUPED is off: these customers had no impressions in the four weeks before the start.")
    if report.needed is not None:
        lines.append(f"Sample size: {report.needed:,} customers per variant detect a {report.mde:.0%} relative change "
                     f"with 80 % power (sized from the {report.needed_from}); the smallest variant has "
                     f"{min(report.counts.values()):,}.")
    return lines + analysis.verdict.splitlines()


def display_rows(table: ShownTable, metric: str, currency: str) -> list[list[str]]:
    """The rows of :func:`variant_table` (or any table here) as the page writes them: shares and
    lifts in percent, the metric in its unit, counts with separators, missing values as "–"."""
    def value(v: float) -> str:
        return format_value(metric, v, currency)

    by_header = {"Planned share": lambda v: f"{v * 100:.0f} %", "Share of customers": lambda v: f"{v * 100:.1f} %",
                 "Customers": lambda v: f"{int(v):,}", "95 % low": value, "95 % high": value,
                 "Lift vs control": _lift, "Lift 95 % low": _lift, "Lift 95 % high": _lift,
                 "p-value": lambda v: f"{v:.3f}"}
    formats = [by_header.get(h, value if n == 5 and table.columns[1] == "Serves" else str)
               for n, h in enumerate(table.columns)]
    return [["–" if cell is None else fmt(cell) for fmt, cell in zip(formats, row)] for row in table.rows]
