"""A customer's report as one self-contained HTML page (the PDF is this page, printed).

Laid out for the reader an agent may send it to: a short header (the customer's pseudonym, the
data's reference date, the model version), the profile, then per recommended item its rank, title,
the reasons in plain sentences and what would change it (the counterfactual sentences). Each item
is one block that a printed page never splits, several to a page. The numbers behind the words
(the ranker's raw scores, the feature contributions, the history attributions and their charts)
are for analysts: they sit in an appendix at the end, never in the body, as raw ranker units mean
nothing to a customer.

The page loads nothing from anywhere: its styles are inline, its charts are inline SVG (drawn by
:mod:`dashboard.report_pdf`) or, where no browser can draw them, plain HTML/CSS bars with the same
numbers, and a Content-Security-Policy forbids anything else. Shop text is escaped everywhere:
it is shown, never obeyed. The customer appears only as a pseudonym.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

from dashboard.explanation_figures import contribution_rows, history_label
from dashboard.report_profile import profile_card, reference_line, utc_text
from dashboard.theme import FONT_FAMILY, INK, NEGATIVE, POSITIVE
from explain.types import CustomerExplanation, ItemExplanation

__all__ = ["TOP_CONTRIBUTIONS", "TOP_HISTORY", "NO_REASON", "report_page"]

# Rows of an item's charts in the appendix (the CSV holds them all): a waterfall's largest
# contributions (the rest folded into "other") and the history events with the largest attributions.
# Three items' charts then fit a printed page.
TOP_CONTRIBUTIONS = 6
TOP_HISTORY = 5
NO_REASON = "No single strong reason: several small signals add up."  # an item without reason sentences


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


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
# Print rules: an item (body) or an item's numbers (appendix) is never split across pages, and
# nothing forces a page of its own but the appendix, so a printed page holds several items.
_CSS = ("""
@page { size: A4; margin: 12mm 14mm; }
* { box-sizing: border-box; }
body { font-family: %(font)s; color: %(ink)s; margin: 0 auto;
       max-width: 760px; padding: 12px; font-size: 12px; line-height: 1.35; }
@media print { body { padding: 0; max-width: none; } }
h1 { font-size: 19px; margin: 0 0 4px; }
h2 { font-size: 14px; margin: 0 0 3px; }
h3 { font-size: 12.5px; margin: 8px 0 2px; color: #374151; }
.meta { color: #374151; margin: 2px 0; }
.meta code, .pseudonym, .item-id { font-family: "DejaVu Sans Mono", "Liberation Mono", monospace; }
.note { background: #fef3c7; border-left: 4px solid #d97706; padding: 5px 10px; margin: 6px 0; }
.card { border: 1px solid #d1d5db; border-radius: 6px; padding: 6px 12px; margin: 8px 0 10px;
        break-inside: avoid; page-break-inside: avoid; }
.card h2 { font-size: 13px; }
.profile { display: grid; grid-template-columns: max-content 1fr max-content 1fr; gap: 1px 14px; margin: 0; }
.profile dt.wide { grid-column: 1; }
.profile dd.wide { grid-column: 2 / span 3; }
.profile dt { color: #4b5563; }
.profile dd { margin: 0; }
h2.list-heading { margin-top: 10px; }
section.item { border-top: 1px solid #e5e7eb; padding: 5px 0 4px; break-inside: avoid; page-break-inside: avoid; }
section.item h2 { margin: 0; }
.rank { color: #1d4ed8; }
.item-id { color: #6b7280; font-size: 11px; font-weight: normal; }
ul.reasons { margin: 1px 0 3px 18px; padding: 0; }
.counterfactual { border-left: 3px solid #2563eb; background: #eff6ff; padding: 3px 10px; margin: 3px 0 0; }
.counterfactual-label { font-weight: bold; }
section.appendix { break-before: page; page-break-before: always; }
.appendix-item { break-inside: avoid; page-break-inside: avoid; border-top: 1px solid #e5e7eb; padding-top: 4px;
                 margin-bottom: 4px; }
.appendix-item h3 { font-size: 12.5px; color: %(ink)s; margin: 0 0 2px; }
.appendix-item h4 { font-size: 11px; margin: 2px 0 0; color: #4b5563; font-weight: normal; }
h2, h3, h4 { break-after: avoid; page-break-after: avoid; }
.chart, .bars { break-inside: avoid; page-break-inside: avoid; }
.chart svg { max-width: 100%; height: auto; display: block; }
.small { color: #6b7280; font-size: 11px; margin: 2px 0; }
.bars { margin: 2px 0 6px; font-size: 11px; }
.bar-row { display: grid; grid-template-columns: 46% 1fr 60px 90px; align-items: center; gap: 6px; min-height: 15px; }
.bar-label { overflow-wrap: anywhere; }
.bar-track { position: relative; height: 12px; background: %(centre_line)s; }
.bar { position: absolute; top: 1px; bottom: 1px; border-radius: 2px; }
.bar.pos { background: %(pos)s; }
.bar.neg { background: %(neg)s; }
.bar-value { text-align: right; font-variant-numeric: tabular-nums; }
.bar-extra { color: #6b7280; white-space: nowrap; }
.bars-caption { margin: 2px 0; color: #4b5563; font-size: 11px; }
""".replace("%(pos)s", POSITIVE).replace("%(neg)s", NEGATIVE).replace("%(font)s", FONT_FAMILY)
        .replace("%(ink)s", INK).replace("%(centre_line)s", _CENTRE_LINE))

# The page may load nothing: no scripts, fonts, images or styles from anywhere but itself.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _item_block(item: ItemExplanation) -> str:
    """One recommended item as the reader sees it: rank, title, reasons, what would change it."""
    parts = [f'<section class="item"><h2><span class="rank">#{item.rank}</span> {_e(item.title)} '
             f'<span class="item-id">item {_e(item.item_id)}</span></h2>']
    if item.reasons:
        parts.append('<ul class="reasons">' + "".join(f"<li>{_e(r)}</li>" for r in item.reasons) + "</ul>")
    else:
        parts.append(f'<p class="small">{_e(NO_REASON)}</p>')
    for line in getattr(item, "rules", ()):  # what merchandising rules did, apart from the model's reasons
        parts.append(f'<p class="counterfactual"><span class="counterfactual-label">Rule:</span> {_e(line)}</p>')
    if item.counterfactual:
        parts.append(f'<p class="counterfactual"><span class="counterfactual-label">What would change it:</span> '
                     f"{_e(item.counterfactual)}</p>")
    parts.append("</section>")
    return "".join(parts)


def _appendix_item(item: ItemExplanation, svgs: list[str] | None) -> str:
    """One item's numbers: its raw score, what moved it, and the history behind the attention signal."""
    parts = [f'<div class="appendix-item"><h3>#{item.rank} {_e(item.title)} '
             f'<span class="item-id">item {_e(item.item_id)} · score {item.score:.3f} '
             f"(base value {item.base_value:+.3f})</span></h3>",
             "<h4>What moved the score</h4>",
             f'<div class="chart">{svgs.pop(0)}</div>' if svgs is not None else _waterfall_bars(item)]
    if not item.history:
        parts.append("<h4>History behind the deep-interest signal. No past events: nothing in this customer's "
                     "history drives this item.</h4>")
    else:
        parts.append(f"<h4>History behind the deep-interest signal ({item.attention_share:.0%} of the SHAP mass; "
                     f"Integrated Gradients convergence delta {item.convergence_delta:.2g})</h4>")
        parts.append(f'<div class="chart">{svgs.pop(0)}</div>' if svgs is not None else _history_bars(item))
    parts.append("</div>")
    return "".join(parts)


def _appendix(explanation: CustomerExplanation, svgs: list[str] | None) -> str:
    if not explanation.items:
        return ""
    items = "".join(_appendix_item(item, svgs) for item in explanation.items)
    return f"""<section class="appendix">
<h2>Appendix: the model's numbers</h2>
<p class="small">For analysts. Each item's score is the ranker's raw score, in its own units (only the order
matters): it equals the base value (the average item) plus the contributions of its features, so green bars
raised the item and red ones lowered it. History charts show how much each past event drove the deep-interest
signal (Integrated Gradients attribution) beside how much the network attended to it. Every number is also in
the CSV report.</p>
{items}
</section>"""


def report_page(explanation: CustomerExplanation, svgs: list[str] | None) -> str:
    """The whole page. ``svgs`` holds the drawn charts in :func:`dashboard.reports.item_figures`
    order (per item: its waterfall, then its history chart when it has history); None draws
    every chart as HTML bars instead."""
    svgs = list(svgs) if svgs is not None else None
    cold = ('<p class="note">Cold start: this customer has no history yet, so these are the shop\'s popular '
            "items and the reasons describe the items, not the customer.</p>" if explanation.cold_start else "")
    time_based = explanation.profile.get("time_based", True) is not False
    items = "".join(_item_block(item) for item in explanation.items) or "<p>No items to recommend.</p>"
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
<p class="meta">{reference_line(explanation.as_of, time_based)}</p>
<p class="meta">Model version <code>{_e(explanation.model_version)}</code> · generated
 {_e(utc_text(explanation.generated_at))} · {len(explanation.items)} item(s), best match first.
 The customer is identified by a pseudonym only.</p>
{cold}
</header>
{profile_card(explanation.profile, explanation.as_of)}
<h2 class="list-heading">Recommended items</h2>
{items}
{_appendix(explanation, svgs)}
</body>
</html>
"""
