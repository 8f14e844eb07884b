"""The one look of every chart in Recsight: palette, font family, Plotly template, ``style``.

Before this module the dashboard and the explanations drew with two palettes and two font stacks,
so the same product showed two faces. Every figure builder in :mod:`dashboard` now takes its
colours and layout from here, on screen and in the HTML/PDF reports alike.

Colour names say what a colour *means*, not what it looks like, so a chart reads the same
wherever it appears:

- :data:`PRIMARY` the main series (events, the served model, attention, importance);
  :data:`PRIMARY_LIGHT` its lighter partner, :data:`ACCENT` a second measure (revenue);
  :data:`DIMMED` what is shown for contrast only (baselines, unselected segments).
- :data:`POSITIVE` what raised a score, :data:`NEGATIVE` what lowered it, :data:`NEUTRAL` base
  values, totals and folded rows.
- :data:`INK` text, :data:`MUTED` secondary text, :data:`GRID` grid and rules.

The font stack is the app's (``--rs-font`` in ``assets/recsight.css``) with the Debian fonts
(DejaVu, Liberation) before the generic fallback, so headless Chromium prints a report with a
font installed on the machine and never needs a web font.
"""

from __future__ import annotations

import plotly.graph_objects as go

__all__ = [
    "FONT_FAMILY", "PALETTE", "PRIMARY", "PRIMARY_LIGHT", "ACCENT", "DIMMED", "POSITIVE", "NEGATIVE",
    "NEUTRAL", "INK", "MUTED", "GRID", "TEMPLATE", "style", "empty_figure",
]

FONT_FAMILY = ('system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", "Noto Sans", '
               '"DejaVu Sans", "Liberation Sans", Arial, sans-serif')

INK, MUTED, GRID = "#1f2933", "#6b7785", "#e6e9ee"
PRIMARY, PRIMARY_LIGHT, ACCENT, DIMMED = "#3d6a8e", "#a9c1d6", "#c4975c", "#cfd6de"
POSITIVE = "#1a7f5a"  # raised the score
NEGATIVE = "#c2410c"  # lowered the score
NEUTRAL = MUTED  # base values, totals, folded features
PALETTE: tuple[str, ...] = (PRIMARY, "#6d9c8f", ACCENT, "#a86a6a", "#7c6d9e", "#8c9aa8", "#5b8fa8")
_ZERO_LINE = "#9aa5b1"

TEMPLATE = go.layout.Template(layout=go.Layout(
    font={"family": FONT_FAMILY, "size": 12, "color": INK},
    paper_bgcolor="white",
    plot_bgcolor="white",
    margin={"l": 10, "r": 20, "t": 48, "b": 40},
    hoverlabel={"bgcolor": "white", "bordercolor": GRID, "font": {"family": FONT_FAMILY, "size": 12, "color": INK}},
    xaxis={"gridcolor": GRID, "zerolinecolor": _ZERO_LINE, "linecolor": GRID, "automargin": True},
    yaxis={"gridcolor": GRID, "zerolinecolor": _ZERO_LINE, "linecolor": GRID, "automargin": True},
    colorway=list(PALETTE),
    showlegend=False,
    separators=".,",
))


def style(fig: go.Figure, height: int = 320) -> go.Figure:
    """Apply the dashboard's card look to ``fig`` (in place) and return it.

    On top of :data:`TEMPLATE`: a transparent background (the card shows through), tight margins
    (the card carries the title), no zero lines and muted tick labels, so the data is what stands out.
    """
    fig.update_layout(
        template=TEMPLATE,
        height=height,
        margin=dict(l=8, r=16, t=8, b=8),
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        font=dict(family=FONT_FAMILY, size=12, color=INK),
        colorway=list(PALETTE),
        hoverlabel=dict(bgcolor="white", bordercolor=GRID, font=dict(family=FONT_FAMILY, size=12, color=INK)),
        showlegend=False,
        separators=".,",
    )
    fig.update_xaxes(gridcolor=GRID, zeroline=False, linecolor=GRID, tickfont=dict(color=MUTED))
    fig.update_yaxes(gridcolor=GRID, zeroline=False, linecolor=GRID, tickfont=dict(color=MUTED))
    return fig


def empty_figure(message: str, height: int = 320) -> go.Figure:
    """A blank chart that says why it is blank (no data in the range, no profiles yet...), so an
    empty card never looks like a chart that failed to load."""
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font=dict(size=13, color=MUTED))
    style(fig, height)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig
