"""A customer's report as one self-contained HTML page (the PDF is this page, printed).

The page loads nothing from anywhere: its styles are inline, its charts are inline SVG (drawn by
:mod:`dashboard.report_pdf`) or, where no browser can draw them, plain HTML/CSS bars with the same
numbers, and a Content-Security-Policy forbids anything else. Shop text is escaped everywhere:
it is shown, never obeyed. The customer appears only as a pseudonym.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from dashboard.explanation_figures import contribution_rows, format_value, history_label
from dashboard.theme import FONT_FAMILY, INK, NEGATIVE, POSITIVE
from explain.types import CustomerExplanation, ItemExplanation

__all__ = ["TOP_CONTRIBUTIONS", "TOP_HISTORY", "report_page"]

TOP_CONTRIBUTIONS = 8  # rows of a waterfall (chart or bars), the rest folded into "other"
TOP_HISTORY = 10  # history events shown per item

# Words for the profile card's keys (analytics.profile_card); other keys are shown humanised.
_PROFILE_LABELS = {
    "segment": "Segment",
    "n_events": "Events",
    "n_purchases": "Purchases",
    "recency_days": "Days since last activity",
    "frequency": "Frequency (purchase days)",
    "monetary": "Spent",
    "favourite_categories": "Favourite categories",
    "favourite_brands": "Favourite brands",
    "price_band": "Price band",
    "last_active": "Last active",
}
_PROFILE_HIDDEN = {"user_id", "time_based"}  # shown in the header / only steers which fields are filled


def _bar_rows(rows: Iterable[tuple[str, float, str, str]]) -> str:
    """Diverging bars around a centre line: ``(label, value, shown text, extra column)``."""
    rows = list(rows)
    peak = max((abs(v) for _, v, _, _ in rows), default=0.0) or 1.0
    out = []
    for label, value, text, extra in rows:
        width = 50.0 * abs(value) / peak
        left = 50.0 if value >= 0 else 50.0 - width
        sign = "pos" if value >= 0 else "neg"
        out.append(
            f'<div class="bar-row"><span class="bar-label">{_e(label)}</span>'
            f'<span class="bar-track"><span class="bar {sign}" style="left:{left:.1f}%;width:{width:.1f}%">'
            f'</span></span><span class="bar-value">{_e(text)}</span>'
            f'<span class="bar-extra">{_e(extra)}</span></div>'
        )
    return '<div class="bars">' + "".join(out) + "</div>"


def _waterfall_bars(item: ItemExplanation) -> str:
    rows = contribution_rows(item.contributions, TOP_CONTRIBUTIONS)
    body = _bar_rows((label, c, f"{c:+.3f}", "") for label, c in rows)
    return (f'<p class="bars-caption">Base value {item.base_value:+.3f}, then each contribution, '
            f"gives the score {item.score:.3f}.</p>{body}")


def _history_bars(item: ItemExplanation) -> str:
    events = sorted(item.history, key=lambda h: abs(h.attribution), reverse=True)[:TOP_HISTORY]
    body = _bar_rows((history_label(h), h.attribution, f"{h.attribution:+.3f}",
                      f"attention {h.attention:.2f}") for h in events)
    return f'<p class="bars-caption">Attribution (Integrated Gradients) and attention weight per event.</p>{body}'


_CENTRE_LINE = "linear-gradient(#9ca3af, #9ca3af) 50% 0 / 1px 100% no-repeat"  # the bars' zero line
_CSS = ("""
@page { size: A4; margin: 12mm; }
* { box-sizing: border-box; }
body { font-family: %(font)s; color: %(ink)s; margin: 0 auto;
       max-width: 760px; padding: 16px; font-size: 13px; line-height: 1.45; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 0 0 6px; }
h3 { font-size: 13px; margin: 12px 0 4px; color: #374151; }
.meta { color: #4b5563; margin: 0 0 12px; }
.meta code, .pseudonym { font-family: "DejaVu Sans Mono", "Liberation Mono", monospace; }
.note { background: #fef3c7; border-left: 4px solid #d97706; padding: 6px 10px; margin: 8px 0; }
.card { border: 1px solid #d1d5db; border-radius: 6px; padding: 10px 14px; margin: 0 0 16px; }
.profile { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
.profile dt { color: #4b5563; }
.profile dd { margin: 0; }
section.item { margin-top: 20px; }
section.item + section.item { break-before: page; }
h2, h3 { break-after: avoid; }
.chart, .bars, .counterfactual, .keep { break-inside: avoid; }
.score { color: #4b5563; font-weight: normal; }
ul.reasons { margin: 4px 0 8px 18px; padding: 0; }
.counterfactual { border-left: 4px solid #2563eb; background: #eff6ff; padding: 6px 10px; margin: 8px 0; }
.chart svg { max-width: 100%; height: auto; display: block; }
.small { color: #6b7280; font-size: 11px; margin: 2px 0; }
.bars { margin: 4px 0 10px; }
.bar-row { display: grid; grid-template-columns: 44% 1fr 64px 100px; align-items: center; gap: 6px; min-height: 20px; }
.bar-label { overflow-wrap: anywhere; }
.bar-track { position: relative; height: 14px; background: %(centre_line)s; }
.bar { position: absolute; top: 1px; bottom: 1px; border-radius: 2px; }
.bar.pos { background: %(pos)s; }
.bar.neg { background: %(neg)s; }
.bar-value { text-align: right; font-variant-numeric: tabular-nums; }
.bar-extra { color: #6b7280; white-space: nowrap; }
.bars-caption { margin: 4px 0; color: #4b5563; }
footer { margin-top: 20px; border-top: 1px solid #e5e7eb; padding-top: 8px; }
""".replace("%(pos)s", POSITIVE).replace("%(neg)s", NEGATIVE).replace("%(font)s", FONT_FAMILY)
        .replace("%(ink)s", INK).replace("%(centre_line)s", _CENTRE_LINE))

# The page may load nothing: no scripts, fonts, images or styles from anywhere but itself.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _when(moment: datetime) -> str:
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    offset = moment.utcoffset()
    if offset is None:
        return text
    return text + (" UTC" if not offset else moment.strftime(" UTC%z"))


def _profile_value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return format_value(value)
    if isinstance(value, datetime):
        return _when(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict) and {"p25", "median", "p75"} <= value.keys():
        basis = f", {value['basis']}" if value.get("basis") else ""
        return (f"{_profile_value(value['p25'])} – {_profile_value(value['p75'])} "
                f"(median {_profile_value(value['median'])}{basis})")
    if isinstance(value, dict):
        share = value.get("share")
        named = [str(v) for key, v in value.items() if key != "share" and v is not None]
        if isinstance(share, (int, float)) and named:
            return f"{', '.join(named)} ({share:.0%})"
        return ", ".join(f"{key}: {_profile_value(v)}" for key, v in value.items())
    if isinstance(value, (list, tuple)):
        return "; ".join(_profile_value(v) for v in value) or "—"
    return str(value)


def _profile_label(key: str) -> str:
    return _PROFILE_LABELS.get(key) or key.replace("_", " ").capitalize()


def _profile_card(profile: dict[str, Any]) -> str:
    rows = [(key, value) for key, value in profile.items() if key not in _PROFILE_HIDDEN]
    if not rows:
        return '<div class="card"><h2>Profile</h2><p>No profile: this customer has no recorded behaviour.</p></div>'
    body = "".join(f"<dt>{_e(_profile_label(str(key)))}</dt><dd>{_e(_profile_value(value))}</dd>"
                   for key, value in rows)
    return f'<div class="card"><h2>Profile</h2><dl class="profile">{body}</dl></div>'


def _item_section(item: ItemExplanation, svgs: list[str] | None) -> str:
    parts = [f'<section class="item"><h2>#{item.rank} {_e(item.title)} '
             f'<span class="score">· score {item.score:.3f} · item {_e(item.item_id)}</span></h2>']
    if item.reasons:
        parts.append('<ul class="reasons">' + "".join(f"<li>{_e(r)}</li>" for r in item.reasons) + "</ul>")
    if item.counterfactual:
        parts.append(f'<p class="counterfactual"><strong>What would change it:</strong> {_e(item.counterfactual)}</p>')
    parts.append("<h3>What moved the score</h3>")
    parts.append(f'<div class="chart">{svgs.pop(0)}</div>' if svgs is not None else _waterfall_bars(item))
    parts.append('<div class="keep"><h3>History behind the deep-interest signal</h3>')
    if not item.history:
        parts.append("<p>No past events: nothing in this customer's history drives this item.</p>")
    else:
        parts.append(f'<p class="small">This signal carries {item.attention_share:.0%} of the score\'s SHAP mass '
                     f"(Integrated Gradients convergence delta {item.convergence_delta:.2g}).</p>")
        parts.append(f'<div class="chart">{svgs.pop(0)}</div>' if svgs is not None else _history_bars(item))
    parts.append("</div>")
    parts.append("</section>")
    return "".join(parts)


def report_page(explanation: CustomerExplanation, svgs: list[str] | None) -> str:
    """The whole page. ``svgs`` holds the drawn charts in :func:`dashboard.reports.item_figures`
    order (per item: its waterfall, then its history chart when it has history); None draws
    every chart as HTML bars instead."""
    svgs = list(svgs) if svgs is not None else None
    cold = ('<p class="note">Cold start: this customer has no history yet, so these are the shop\'s popular '
            "items and the reasons describe the items, not the customer.</p>" if explanation.cold_start else "")
    items = "".join(_item_section(item, svgs) for item in explanation.items) or "<p>No items to recommend.</p>"
    version = f"<code>{_e(explanation.model_version)}</code>"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Recommendations for {_e(explanation.user_id)}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>Recommendations for <span class="pseudonym">{_e(explanation.user_id)}</span></h1>
<p class="meta">Generated {_e(_when(explanation.generated_at))} · model version {version}
 · {len(explanation.items)} item(s)</p>
{cold}
</header>
{_profile_card(explanation.profile)}
{items}
<footer class="small">
<p>How to read this: each item's score is the ranker's raw score; it equals the base value (the average
item) plus the contributions of its features, so green bars raised the item and red ones lowered it.
History charts show how much each past event drove the deep-interest signal (Integrated Gradients
attribution) beside how much the network attended to it. The customer is identified by a pseudonym only.</p>
</footer>
</body>
</html>
"""
