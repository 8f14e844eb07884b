"""Plotly figures of explanations: pure functions of :mod:`explain.types` data, nothing else.

The lookup page, the model page and the reports all draw from here, so an agent sees the same
chart on screen and on paper. Every figure is built only from the numbers it is given (no models,
no database, no network) and uses the product's one look, :mod:`dashboard.theme`: its template,
:data:`~dashboard.theme.POSITIVE` for what raised a score and :data:`~dashboard.theme.NEGATIVE`
for what lowered it.

Text that comes from the shop (titles, labels) is HTML-escaped before it reaches Plotly, because
Plotly reads ``<b>``, ``<br>`` and ``<a href>`` in text as markup: a title must show as written,
never become a link.
"""

from __future__ import annotations

import html
import textwrap
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.theme import ACCENT, DIMMED, NEGATIVE, NEUTRAL, POSITIVE, PRIMARY, TEMPLATE
from explain.types import Comparison, Contribution, HistoryEvidence, ItemExplanation
from models.features import is_ranker_feature, value_words

__all__ = [
    "shap_waterfall", "match_movers", "history_attributions", "comparison_bars", "global_importance_bars",
    "dependence_plot", "history_label", "contribution_rows", "format_value", "search_contributions",
]

_ROW_PX = 26  # height per bar, so labels never overlap however many rows a figure has
_LABEL_CHARS = 26  # item titles are cut to this in axis labels (the hover shows them whole)
_TICK_CHARS, _LINE_PX = 34, 17  # a bar label's line (12 px text), and the height it takes
_TITLE_CHARS, _NOTE_CHARS = 48, 72  # a title line (16 px) and a note line (12 px) that fit a 420 px chart
_TITLE_TOP, _TITLE_LINE_PX, _NOTE_LINE_PX = 48, 21, 16  # the top margin of a one-line title, and each extra line


def _text(value: object) -> str:
    """Shop text as Plotly shows it literally (see the module docstring)."""
    return html.escape(str(value), quote=False)


def _height(rows: int, extra: int = 110, lines: int = 0) -> int:
    """Room for ``rows`` bars whose labels take ``lines`` lines in all (0: one line each)."""
    return max(220, extra + max(_ROW_PX * rows, _LINE_PX * lines + 10 * rows))


def _label_axis(fig: go.Figure, labels: Sequence[str], notes: Sequence[str] | None = None, **where: int) -> int:
    """Show the bar labels of a horizontal chart wrapped to :data:`_TICK_CHARS` (each with its
    ``notes`` entry, "raised 16%", after it), and return how many lines they take.

    Why: Plotly never wraps a tick label, so one long label takes the width the bars need; and a
    number printed beside a bar runs off the chart's edge, or into the labels, in a narrow
    window. In the label it always fits. The bars keep the plain labels as their categories, so
    the data behind the figure (its CSV) is unchanged."""
    texts = ["<br>".join(_wrap(label if notes is None else f"{label} · {notes[i]}", _TICK_CHARS))
             for i, label in enumerate(labels)]
    fig.update_yaxes(tickmode="array", tickvals=list(labels), ticktext=texts, **where)
    return sum(text.count("<br>") + 1 for text in texts)


def _wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken between words (a longer word
    keeps its own line): Plotly never wraps a title, it runs it off the chart's edge."""
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [""]


def _finish(fig: go.Figure, title: str, height: int, note: str = "") -> go.Figure:
    """The figure in the product's look, titled: the title wrapped to fit a half-width card
    (and the narrowest window), ``note`` in smaller muted lines under it, the top margin grown
    by the lines they take, so neither is cut nor runs into the plot."""
    lines = _wrap(title, _TITLE_CHARS)
    notes = _wrap(note, _NOTE_CHARS) if note else []
    text = "<br>".join(lines + [f'<span style="font-size:12px;color:{NEUTRAL}">{line}</span>' for line in notes])
    top = _TITLE_TOP + _TITLE_LINE_PX * (len(lines) - 1) + _NOTE_LINE_PX * len(notes)
    fig.update_layout(template=TEMPLATE, title={"text": text, "x": 0, "xanchor": "left"},  # centred in the margin
                      margin={"t": top}, height=height + top - _TITLE_TOP)
    return fig


def _signed_colours(values: Sequence[float]) -> list[str]:
    return [POSITIVE if v >= 0 else NEGATIVE for v in values]


def format_value(value: float | None) -> str:
    """A feature or profile number as an agent reads it: "3", "0.042", "2.5", "1,250"; None and
    NaN (a feature the customer has no data for) read "missing"."""
    if value is None or np.isnan(float(value)):
        return "missing"
    v = float(value)
    if v.is_integer() or abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:.2f}".rstrip("0").rstrip(".")
    return f"{v:.3g}"


def contribution_rows(contributions: Sequence[Contribution], top: int) -> list[tuple[str, float]]:
    """The ``top`` largest contributions as ``(label = value, contribution)``, the rest folded into
    one ``"Other N features"`` row, so a chart or table stays short yet still adds up to the score.

    The feature's value sits beside its label ("How much of your shopping is this brand: 42 %")
    because the value is what an agent can check against the customer's history; values with no
    meaning outside the model (a co-visitation weight) are left out (:func:`models.features.value_words`)."""
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    ordered = sorted(contributions, key=lambda c: abs(c.contribution), reverse=True)
    rows = [(_labelled(c), float(c.contribution)) for c in ordered[:top]]
    rest = ordered[top:]
    if rest:
        rows.append((f"Other {len(rest)} features", float(sum(c.contribution for c in rest))))
    return rows


def _labelled(c: Contribution) -> str:
    words = _words(c.feature, c.value)
    return f"{c.label}: {words}" if words else c.label


def _words(feature: str, value: float | None) -> str | None:
    """A ranker feature's value in its unit (None where it means nothing outside the model); a
    search feature's as a plain number."""
    return value_words(feature, value) if is_ranker_feature(feature) else format_value(value)


def match_movers(item: ItemExplanation, top: int = 8) -> go.Figure:
    """What raised and what lowered the item's match, each as its share of everything that moved
    it: the support agent's chart, in no unit the ranker invented (the raw waterfall is
    :func:`shap_waterfall`, for analysts). The bars' sizes are the SHAP contributions divided by
    their total absolute size, so their order and proportions are exactly the ranker's."""
    rows = contribution_rows(item.contributions, top)
    total = sum(abs(c.contribution) for c in item.contributions) or 1.0
    labels = _unique([_text(label) for label, _ in rows])
    shares = [100 * c / total for _, c in rows]
    moves = [f"{'raised' if v >= 0 else 'lowered'} {abs(v):.0f}%" for v in shares]
    fig = go.Figure(go.Bar(
        orientation="h", y=labels, x=shares,
        marker={"color": [POSITIVE if v >= 0 else NEGATIVE for v in shares]},
        text=moves, textposition="none", hovertemplate="%{y}<br>%{text}<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", type="category")
    lines = _label_axis(fig, labels, moves)
    low, high = min([0.0, *shares]), max([0.0, *shares])
    pad = 0.06 * (high - low or 1.0)
    fig.update_xaxes(title_text="share (%)", range=[low - pad, high + pad], zeroline=True)
    return _finish(fig, f"What raised and lowered #{item.rank} {_text(item.title)}",
                   _height(len(labels), lines=lines), note="each bar: its share of everything that moved its match")


def shap_waterfall(item: ItemExplanation, top: int = 8) -> go.Figure:
    """From the model's base value, through the ``top`` largest contributions (by human label,
    the rest folded into "other"), to the item's score: how the ranker arrived at its number.

    The trace's ``x`` holds the base value, each contribution, then the score, in that order.
    """
    rows = contribution_rows(item.contributions, top)
    labels = ["Base value (average item)"] + _unique([_text(label) for label, _ in rows]) + ["Score"]
    values = [item.base_value] + [c for _, c in rows] + [item.score]
    numbers = [f"{item.base_value:+.3f}"] + [f"{c:+.3f}" for _, c in rows] + [f"{item.score:.3f}"]
    fig = go.Figure(go.Waterfall(
        orientation="h",
        y=labels,
        x=values,
        measure=["absolute"] + ["relative"] * len(rows) + ["total"],
        text=numbers, textposition="none",  # the numbers are in the labels (see _label_axis)
        hovertemplate="%{y}<br>%{x:+.4f}<extra></extra>",
        increasing={"marker": {"color": POSITIVE}},
        decreasing={"marker": {"color": NEGATIVE}},
        totals={"marker": {"color": NEUTRAL}},
        connector={"line": {"color": DIMMED, "width": 1}},
    ))
    fig.update_yaxes(autorange="reversed", type="category")
    lines = _label_axis(fig, labels, numbers)
    fig.update_xaxes(title_text="ranker score (raw units)", range=_padded_range(values[:-1]))
    return _finish(fig, f"Why #{item.rank} {_text(item.title)} scores {item.score:.3f}",
                   _height(len(labels), lines=lines))


def _padded_range(steps: Sequence[float]) -> list[float]:
    """The x range of a waterfall (``steps`` = base, then relative moves): every running total, and
    zero, with a little room on both sides."""
    ends = np.cumsum(steps)
    lo, hi = min(0.0, float(ends.min())), max(0.0, float(ends.max()))
    pad = 0.08 * (hi - lo or 1.0)
    return [lo - pad, hi + pad]


def _short(text: str, limit: int = _LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def history_label(event: HistoryEvidence) -> str:
    """How a history event is named everywhere: title, what the customer did, and when."""
    return f"{event.title} · {event.event_type} · {event.ts:%Y-%m-%d}"


def _unique(labels: list[str]) -> list[str]:
    """Distinct axis categories: Plotly would stack two bars with the same label into one."""
    counts: Counter[str] = Counter()
    out = []
    for label in labels:
        counts[label] += 1
        out.append(label if counts[label] == 1 else f"{label} ({counts[label]})")
    return out


def history_attributions(item: ItemExplanation, top: int = 10) -> go.Figure:
    """Each past event's Integrated Gradients attribution (left) beside the attention weight the
    network gave it (right), for the ``top`` events with the largest attribution.

    Attribution says how much an event moved the deep-interest score (against no history at all);
    attention (0..1) says how strongly the network weighs the event for this item. They usually
    agree; when they do not, the attribution is the faithful one: it also counts what the event is.
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    events = sorted(item.history, key=lambda h: abs(h.attribution), reverse=True)[:top]
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, column_widths=[0.68, 0.32], horizontal_spacing=0.04)
    if not events:
        fig.add_annotation(text="No history events: this customer has no past behaviour to attribute.",
                           x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False)
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        return _finish(fig, f"History behind #{item.rank} {_text(item.title)}", 220)
    labels = _unique([_text(f"{_short(h.title)} · {h.event_type} · {h.ts:%Y-%m-%d}") for h in events])
    full = [_text(history_label(h)) for h in events]
    attributions = [h.attribution for h in events]
    attention = [h.attention for h in events]
    fig.add_trace(go.Bar(
        name="attribution", orientation="h", y=labels, x=attributions, marker_color=_signed_colours(attributions),
        text=[f"{a:+.3f}" for a in attributions], textposition="none", customdata=full,
        hovertemplate="%{customdata}<br>attribution: %{x:+.4f}<extra></extra>",
    ), row=1, col=1)
    fig.add_trace(go.Bar(
        name="attention", orientation="h", y=labels, x=attention, marker_color=PRIMARY,
        text=[f"{a:.2f}" for a in attention], textposition="none", customdata=full,
        hovertemplate="%{customdata}<br>attention weight: %{x:.3f}<extra></extra>",
    ), row=1, col=2)
    fig.update_yaxes(autorange="reversed", type="category")
    # Each event's attribution is in its label: a number beside a bar runs into the event labels
    # or off the chart in a narrow window.
    lines = _label_axis(fig, labels, [f"{a:+.3f}" for a in attributions], row=1, col=1)
    fig.update_xaxes(zeroline=True)
    low, high = min([0.0, *attributions]), max([0.0, *attributions])
    pad = 0.05 * (high - low or 1.0)
    fig.update_xaxes(title_text="attribution", range=[low - (pad if low < 0 else 0.0), high + pad], row=1, col=1)
    fig.update_xaxes(title_text="attention", range=[0, 1.05 * max([*attention, 0.05])], nticks=3, row=1, col=2)
    return _finish(fig, f"History behind #{item.rank} {_text(item.title)}", _height(len(labels), lines=lines))


def comparison_bars(c: Comparison, top: int = 10) -> go.Figure:
    """Each feature's part in what separates two items (A minus B), largest first, the rest folded
    into "other", as a share of all the parts' sizes: the same order and proportions as the score
    gap's TreeSHAP differences, in no unit the ranker invented."""
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    ordered = sorted(c.differences, key=lambda d: abs(d.difference), reverse=True)
    total = sum(abs(d.difference) for d in ordered) or 1.0
    labels = [_text(d.label) for d in ordered[:top]]
    values = [100 * d.difference / total for d in ordered[:top]]
    detail = [f"A: {_value_text(d.feature, d.value_a)}<br>B: {_value_text(d.feature, d.value_b)}"
              for d in ordered[:top]]
    rest = ordered[top:]
    if rest:
        labels.append(f"Other {len(rest)} features")
        values.append(100 * float(sum(d.difference for d in rest)) / total)
        detail.append("")
    fig = go.Figure(go.Bar(
        orientation="h", y=labels, x=values, marker_color=_signed_colours(values), customdata=detail,
        text=[f"{abs(v):.0f}%" for v in values], textposition="none",
        hovertemplate="%{y}<br>%{customdata}<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", type="category")
    lines = _label_axis(fig, labels, [f"{abs(v):.0f}% {'for A' if v >= 0 else 'for B'}" for v in values])
    fig.update_xaxes(title_text="share of what separates them (%)")
    verb = "above" if c.score_a >= c.score_b else "below"
    return _finish(fig, f"Why {_text(c.title_a)} ranks {verb} {_text(c.title_b)}", _height(len(labels), lines=lines),
                   note=f"A: {_text(_short(c.title_a))}, B: {_text(_short(c.title_b))}; bars to the right favour A")


def _value_text(feature: str, value: float | None) -> str:
    return _words(feature, value) or "a model weight"


def _importance_frame(importance: Mapping[str, float] | pd.DataFrame) -> pd.DataFrame:
    """Columns ``label``, ``importance`` and ``segment`` (None for one overall series)."""
    if isinstance(importance, Mapping):
        return pd.DataFrame({"label": list(importance), "importance": [float(v) for v in importance.values()],
                             "segment": None})
    frame = importance.copy()
    names = next((col for col in ("label", "group", "feature") if col in frame.columns), None)
    frame = frame.rename_axis("label").reset_index() if names is None else frame.assign(label=frame[names])
    numeric = [col for col in frame.columns if col not in ("label", "segment", "feature", "group")
               and pd.api.types.is_numeric_dtype(frame[col])]
    value = "mean_abs_shap" if "mean_abs_shap" in frame.columns else (numeric[0] if len(numeric) == 1 else None)
    if value is None:
        raise ValueError("importance frame needs a 'mean_abs_shap' column or exactly one numeric column, "
                         f"got {list(frame.columns)}")
    segment = frame["segment"] if "segment" in frame.columns else None
    return pd.DataFrame({"label": frame["label"].astype(str), "importance": frame[value].astype(float),
                         "segment": segment})


def global_importance_bars(importance: Mapping[str, float] | pd.DataFrame, top: int = 15,
                           segment: str | None = None) -> go.Figure:
    """Mean |SHAP| per feature (or group), largest first: what drives the ranker across customers.

    ``importance`` is a mapping ``label -> mean |SHAP|`` or a DataFrame such as
    :mod:`explain.global_view` returns: bars named by its ``label`` column (else ``group``, else
    ``feature``, else the index), sized by ``mean_abs_shap`` (or its only numeric column); an
    optional ``segment`` column draws one bar series per segment, ordered by the overall mean.
    ``segment`` names the one segment the sample was restricted to, for the title.
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    frame = _importance_frame(importance)
    order = frame.groupby("label", sort=False)["importance"].mean().sort_values(ascending=False).index[:top]
    frame = frame[frame["label"].isin(order)]
    fig = go.Figure()
    segments = [None] if frame["segment"].isna().all() else list(dict.fromkeys(frame["segment"].dropna()))
    for series in segments:
        part = frame if series is None else frame[frame["segment"] == series]
        part = part.set_index("label").reindex(order).dropna(subset=["importance"])
        fig.add_trace(go.Bar(
            orientation="h", y=[_text(label) for label in part.index], x=part["importance"].tolist(),
            name="mean |SHAP|" if series is None else _text(series),
            marker_color=PRIMARY if series is None else None,
            hovertemplate="%{y}<br>mean |SHAP|: %{x:.4f}<extra>%{fullData.name}</extra>",
        ))
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(title_text="mean |SHAP|")
    fig.update_layout(barmode="group", showlegend=len(segments) > 1)
    title = "What drives the ranker overall" if segment is None else \
        f"What drives the ranker for the {_text(segment)} segment"
    return _finish(fig, title, _height(len(order) * len(segments)),
                   note="mean |SHAP| per feature, in the ranker's raw score units")


def dependence_plot(bins: pd.DataFrame, label: str, missing: int = 0, k: int | None = None) -> go.Figure:
    """How one feature's value maps to its SHAP contribution, as means over bins of customers.

    ``bins`` is :func:`dashboard.k_anonymity.dependence_bins`' frame: per bin the mean feature
    value (x), the mean contribution (y), the spread of the contributions (the error bar), and
    its rows and customers (the hover). A point per user–item pair would show one customer's
    value and contribution; a bin of at least k customers shows what the model does without
    showing anyone. Rows without a value are counted in the title, never silently dropped.
    """
    fig = go.Figure(go.Scatter(
        x=bins["value"].tolist(), y=bins["contribution"].tolist(), mode="lines+markers",
        line={"color": DIMMED, "width": 1},
        marker={"color": _signed_colours(bins["contribution"].tolist()), "size": 8},
        error_y={"type": "data", "array": bins["spread"].tolist(), "thickness": 1, "width": 0, "color": NEUTRAL},
        customdata=[[int(c), int(r), float(s)] for c, r, s in zip(bins["customers"], bins["rows"], bins["spread"])],
        hovertemplate="mean value: %{x:.4g}<br>mean SHAP: %{y:+.4f} (spread %{customdata[2]:.4f})"
                      "<br>%{customdata[0]} customers · %{customdata[1]} items<extra></extra>",
    ))
    fig.add_hline(y=0, line_color=NEUTRAL, line_width=1)
    fig.update_xaxes(title_text=_text(label))
    fig.update_yaxes(title_text="mean SHAP contribution")
    notes = [f"means over bins of {k}+ customers"] if k else []
    notes += [f"{missing} missing not shown"] if missing else []
    return _finish(fig, f"Effect of “{_text(label)}” on the score", 380, note="; ".join(notes))


def search_contributions(explanation: Mapping[str, Any], personalised: bool, shown: int = 8) -> go.Figure:
    """A search result's largest TreeSHAP contributions (``explain.search.SearchExplanation.to_dict``),
    query-side bars in the primary colour and customer-side ones in the accent, largest on top;
    the subtitle gives each side's total."""
    contributions = list(explanation.get("contributions", []))[:shown][::-1]
    colours = {"query": PRIMARY, "customer": ACCENT}
    figure = go.Figure(go.Bar(
        x=[c["contribution"] for c in contributions], y=[_text(c["label"]) for c in contributions],
        orientation="h", marker_color=[colours.get(c["side"], PRIMARY) for c in contributions],
        hovertemplate="%{y}: %{x:+.3f}<extra></extra>"))
    sides = explanation.get("sides", {})
    subtitle = (" · ".join(f"{_text(name)}: {value:+.2f}" for name, value in sides.items())
                if personalised else "anonymous search: the query alone")
    figure.update_layout(template=TEMPLATE, title={"text": f"What moved its score<br><sub>{subtitle}</sub>"},
                         height=max(240, 90 + _ROW_PX * len(contributions)),
                         margin={"l": 10, "r": 10, "t": 70, "b": 40}, xaxis_title="contribution to the score")
    figure.update_yaxes(automargin=True)
    return figure
