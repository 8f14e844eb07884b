"""A customer's explained recommendations as a file an agent can keep, print or analyse.

Three formats, all rendered from one :class:`~explain.types.CustomerExplanation`, so every number
matches the dashboard and the API:

- ``html``: one self-contained page. Charts are the :mod:`explain.figures` figures drawn to inline
  SVG by plotly.js itself, so the page loads nothing from anywhere; a Content-Security-Policy
  forbids it too. Where no browser can draw them, the charts become plain HTML/CSS bars with the
  same numbers (logged as a warning), so a report is never lost to charts.
- ``pdf``: that page printed by headless Chromium (local fonts only, no network).
- ``csv``: one flat table for spreadsheets and pandas, see :data:`CSV_COLUMNS`.

The customer appears only as a pseudonym: explanations never hold a raw shop id, and nothing
here looks one up.
"""

from __future__ import annotations

import csv
import html
import io
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import plotly
import plotly.graph_objects as go

from atomic import write_bytes
from errors import RecsightError
from explain import figures
from explain.types import CustomerExplanation, ItemExplanation

if TYPE_CHECKING:
    from models.hybrid import Recommender

__all__ = ["FORMATS", "CSV_COLUMNS", "render_report", "write_report"]

log = logging.getLogger(__name__)

FORMATS = ("html", "pdf", "csv")

CSV_COLUMNS = (
    # who, when, which model: repeated on every row so any filtered slice still says what it is
    "user_id", "generated_at", "model_version",
    # the recommended item
    "rank", "item_id", "title", "score", "base_value",
    # "contribution": one ranker feature's SHAP value; "history": one past event's attribution
    "kind",
    "feature", "label", "group", "value", "contribution",
    "event_item_id", "event_title", "event_type", "event_ts", "attribution", "attention", "score_share",
)
"""CSV layout: one row per user × item × feature (``kind == "contribution"``), then one row per
user × item × history event (``kind == "history"``). Per item, ``base_value`` plus the sum of
``contribution`` over its contribution rows equals ``score``; history rows leave ``contribution``
empty (their part of the attention feature is ``score_share``), so summing never double counts.
Numbers are written exactly (``repr``); titles and labels that a spreadsheet would run as a formula
(leading ``= + - @``) get a leading ``'``; ids are written as they are."""

_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
# Headless Chromium that reaches no network service: it only ever opens our own temporary page.
_CHROME_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
    "--no-default-browser-check", "--disable-extensions",
)
_PDF_TIMEOUT_S = 120
_DRAW_TIMEOUT_S = 60  # plus _DRAW_S_PER_CHART for each chart
_DRAW_S_PER_CHART = 0.5  # ten times what a chart takes on a loaded 2-core machine
_DRAW_BUDGET_MS = 60_000  # virtual time the drawing page may take; it is idle long before
_CHART_WIDTH = 700  # px: the printable width of an A4 page at 96 dpi with the page margins below
_BATCH_CHUNK = 25  # customers whose charts are drawn by one browser start in batch mode
_TOP_CONTRIBUTIONS = 8
_TOP_HISTORY = 10
_CSV_TEXT_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# Words for the profile card's keys (explain.api.customer_profile); other keys are shown humanised.
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


# --------------------------------------------------------------------------- public API


def render_report(explanation: CustomerExplanation, fmt: str, *, charts: str = "svg") -> bytes:
    """The report of one customer as bytes in ``fmt`` (``"html"``, ``"pdf"`` or ``"csv"``).

    ``charts`` is ``"svg"`` (plotly.js in headless Chromium, a few seconds; HTML bars where no
    browser can draw) or ``"css"`` (HTML bars only: instant, no browser needed for HTML, the
    choice for an interactive download). CSV has no charts.
    """
    return _render_many([explanation], fmt, charts)[0]


def write_report(db: Path | str, models: Path | str, user: str, fmt: str, out: Path | str, secret: str = "",
                 k: int = 10) -> Path:
    """Explain ``user``'s top ``k`` and write the report to ``out``; return the path written.

    ``user`` is a shop customer id (looked up with ``secret``) or a pseudonym. If ``out`` is an
    existing folder, the file is named ``<pseudonym>.<fmt>`` inside it.

    Batch mode: if ``user`` names an existing file, it is a list of customers, one id or pseudonym
    per line (blank lines and lines starting with ``#`` are skipped). ``out`` is then a folder
    (created if missing) that receives one ``<pseudonym>.<fmt>`` per customer, and the folder is
    returned. Every id is resolved before anything is written, so one unknown id stops the batch
    with the line numbers to fix instead of leaving half a folder.

    Files are written atomically (a temporary file in the same folder, then a rename) and are
    readable by their owner only, as they describe a customer's behaviour.
    """
    if fmt not in FORMATS:
        raise RecsightError(f"unknown report format {fmt!r}: choose one of {', '.join(FORMATS)}")
    # Imported here: the models (torch) are only needed to explain, not to render a report.
    from explain.api import explain_customer
    from models.hybrid import Recommender

    batch = Path(user).is_file()
    typed = _read_user_list(Path(user)) if batch else [user]
    out = Path(out)
    if batch or out.is_dir():
        folder: Path | None = _prepare_folder(out)
    else:
        _prepare_folder(out.parent)  # fail before any model is loaded if the file cannot be written
        folder = None
    recommender = Recommender.load(Path(db), Path(models))
    try:
        pseudonyms = _resolve_all(recommender, typed, secret, Path(user) if batch else None)
        written: list[Path] = []
        for start in range(0, len(pseudonyms), _BATCH_CHUNK):
            started = time.perf_counter()
            explanations = [explain_customer(recommender, p, k=k) for p in pseudonyms[start:start + _BATCH_CHUNK]]
            for explanation, data in zip(explanations, _render_many(explanations, fmt, "svg")):
                target = folder / f"{explanation.user_id}.{fmt}" if folder is not None else out
                _write_atomic(target, data)
                written.append(target)
            log.info("wrote %d %s report(s) in %.1f s", len(explanations), fmt, time.perf_counter() - started)
    finally:
        recommender.close()
    return folder if batch else written[0]


# --------------------------------------------------------------------------- write_report helpers


def _read_user_list(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise RecsightError(f"cannot read the customer list {path}: {exc}") from None
    users = [line.strip() for line in lines]
    if not any(u and not u.startswith("#") for u in users):
        raise RecsightError(f"the customer list {path} has no customer ids (one per line)")
    return users


def _resolve_all(recommender: Recommender, typed: list[str], secret: str, listing: Path | None) -> list[str]:
    """Pseudonyms of every typed id, in order and without repeats; unknown ids fail together."""
    if listing is None:
        return [recommender.resolve_user(typed[0], secret)]
    pseudonyms: dict[str, None] = {}
    unknown: list[int] = []
    for number, entry in enumerate(typed, start=1):
        if not entry or entry.startswith("#"):
            continue
        try:
            pseudonyms[recommender.resolve_user(entry, secret)] = None
        except RecsightError:
            unknown.append(number)
    if unknown:
        lines = ", ".join(map(str, unknown[:10])) + (" ..." if len(unknown) > 10 else "")
        raise RecsightError(f"{len(unknown)} customer(s) in {listing} are unknown (line {lines}); "
                            "no reports written")
    return list(pseudonyms)


def _prepare_folder(folder: Path) -> Path:
    if folder.exists() and not folder.is_dir():
        raise RecsightError(f"cannot write into {folder}: it is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RecsightError(f"cannot create the report folder {folder}: {exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK):
        raise RecsightError(f"cannot write into {folder}: permission denied")
    return folder


def _write_atomic(path: Path, data: bytes) -> None:
    try:
        write_bytes(path, data)
    except OSError as exc:
        raise RecsightError(f"cannot write {path}: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------- rendering


def _render_many(explanations: Sequence[CustomerExplanation], fmt: str, charts: str) -> list[bytes]:
    """Render several customers at once, so their charts share one browser session."""
    if fmt not in FORMATS:
        raise RecsightError(f"unknown report format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if charts not in ("svg", "css"):
        raise RecsightError(f"unknown chart style {charts!r}: choose svg or css")
    if fmt == "csv":
        return [_csv(e) for e in explanations]
    per_report = [_item_figures(e) for e in explanations] if charts == "svg" else []
    svgs = _svg_charts([fig for figs in per_report for fig in figs]) if charts == "svg" else None
    drawn = iter(svgs or ())
    pages = []
    for number, explanation in enumerate(explanations):
        mine = [next(drawn) for _ in per_report[number]] if svgs is not None else None
        pages.append(_html(explanation, mine).encode("utf-8"))
    if fmt == "pdf":
        return [_pdf(page) for page in pages]
    return pages


def _item_figures(explanation: CustomerExplanation) -> list[go.Figure]:
    """Per item, in order: its waterfall, then its history chart when it has history. The report's
    own headings name each chart, so the figures' titles are dropped."""
    out = []
    for item in explanation.items:
        out.append(figures.shap_waterfall(item, top=_TOP_CONTRIBUTIONS))
        if item.history:
            out.append(figures.history_attributions(item, top=_TOP_HISTORY))
    for fig in out:
        fig.update_layout(title_text="", margin={"t": 10}, height=fig.layout.height - 38)
    return out


# ----------------------------------------------------------------- charts: SVG by plotly.js


def _browser() -> str | None:
    for name in _BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def _chromium(browser: str, args: list[str], workdir: Path, timeout: float) -> subprocess.CompletedProcess:
    """Run headless Chromium on a page in ``workdir``, with a throwaway profile there."""
    command = [browser, *_CHROME_FLAGS, f"--user-data-dir={workdir / 'profile'}", *args]
    return subprocess.run(command, capture_output=True, timeout=timeout, check=False)


# A blank page that has plotly.js draw every figure to SVG (Plotly.toImage) and leaves the
# results, as JSON, in <pre id="svgs"> for --dump-dom. One browser start draws all the charts of
# a report (or of a batch chunk): 201 charts took 9.5 s, where kaleido took about 0.3 s per chart
# plus 2 s to start (measured on the shared 2-core dev machine, load ~6).
_DRAW_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><script src="%(plotly)s"></script></head><body>
<script>
(async () => {
  const out = [];
  for (const spec of %(specs)s) {
    const url = await Plotly.toImage(spec.figure, {format: "svg", width: spec.width, height: spec.height});
    out.push(decodeURIComponent(url.slice(url.indexOf(",") + 1)));
  }
  const pre = document.createElement("pre");
  pre.id = "svgs";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script></body></html>
"""
_DRAWN = re.compile(r'<pre id="svgs">(.*?)</pre>', re.DOTALL)


def _plotly_js() -> Path:
    """plotly.js as shipped inside the plotly package (the same file the dashboard serves)."""
    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _svg_charts(figs: list[go.Figure]) -> list[str] | None:
    """Each figure as an inline SVG string, drawn in one headless Chromium; None if they cannot be
    drawn (no browser, no plotly.js, a failed page), so the caller draws HTML bars instead."""
    if not figs:
        return []
    browser = _browser()
    if browser is None:
        log.warning("no Chromium/Chrome found: report charts are drawn as HTML bars")
        return None
    started = time.perf_counter()
    specs = "[" + ",".join(f'{{"figure":{fig.to_json()},"width":{_CHART_WIDTH},"height":{int(fig.layout.height)}}}'
                           for fig in figs) + "]"
    page = _DRAW_PAGE % {"plotly": _plotly_js().as_uri(), "specs": specs.replace("</", "<\\/")}
    with tempfile.TemporaryDirectory(prefix="recsight-charts-") as tmp:
        source = Path(tmp) / "draw.html"
        source.write_text(page, encoding="utf-8")
        try:
            done = _chromium(browser, [f"--virtual-time-budget={_DRAW_BUDGET_MS}", "--dump-dom", source.as_uri()],
                             Path(tmp), _DRAW_TIMEOUT_S + _DRAW_S_PER_CHART * len(figs))
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("report charts are drawn as HTML bars: %s could not draw them (%s)", browser, exc)
            return None
    found = _DRAWN.search(done.stdout.decode("utf-8", "replace"))
    svgs = json.loads(html.unescape(found.group(1))) if found else []
    if len(svgs) != len(figs):
        log.warning("report charts are drawn as HTML bars: plotly.js drew %d of %d charts (exit %d)",
                    len(svgs), len(figs), done.returncode)
        return None
    log.info("drew %d report charts in %.1f s", len(figs), time.perf_counter() - started)
    return svgs


# ----------------------------------------------------------------- charts: HTML bars


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
    rows = figures.contribution_rows(item.contributions, _TOP_CONTRIBUTIONS)
    body = _bar_rows((label, c, f"{c:+.3f}", "") for label, c in rows)
    return (f'<p class="bars-caption">Base value {item.base_value:+.3f}, then each contribution, '
            f"gives the score {item.score:.3f}.</p>{body}")


def _history_bars(item: ItemExplanation) -> str:
    events = sorted(item.history, key=lambda h: abs(h.attribution), reverse=True)[:_TOP_HISTORY]
    body = _bar_rows((figures.history_label(h), h.attribution, f"{h.attribution:+.3f}",
                      f"attention {h.attention:.2f}") for h in events)
    return f'<p class="bars-caption">Attribution (Integrated Gradients) and attention weight per event.</p>{body}'


# ----------------------------------------------------------------- HTML


_CSS = """
@page { size: A4; margin: 12mm; }
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; color: #1f2937; margin: 0 auto;
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
.bar-track { position: relative; height: 14px; background: linear-gradient(#9ca3af, #9ca3af) 50% 0 / 1px 100% no-repeat; }
.bar { position: absolute; top: 1px; bottom: 1px; border-radius: 2px; }
.bar.pos { background: %(pos)s; }
.bar.neg { background: %(neg)s; }
.bar-value { text-align: right; font-variant-numeric: tabular-nums; }
.bar-extra { color: #6b7280; white-space: nowrap; }
.bars-caption { margin: 4px 0; color: #4b5563; }
footer { margin-top: 20px; border-top: 1px solid #e5e7eb; padding-top: 8px; }
""".replace("%(pos)s", figures.POSITIVE).replace("%(neg)s", figures.NEGATIVE)

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
        return figures.format_value(value)
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


def _html(explanation: CustomerExplanation, svgs: list[str] | None) -> str:
    svgs = list(svgs) if svgs is not None else None
    cold = ('<p class="note">Cold start: this customer has no history yet, so these are the shop\'s popular '
            "items and the reasons describe the items, not the customer.</p>" if explanation.cold_start else "")
    items = "".join(_item_section(item, svgs) for item in explanation.items) or "<p>No items to recommend.</p>"
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
<p class="meta">Generated {_e(_when(explanation.generated_at))} · model version <code>{_e(explanation.model_version)}</code>
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


# ----------------------------------------------------------------- PDF


def _pdf(page: bytes) -> bytes:
    """Print an HTML page with headless Chromium; local files and fonts only."""
    browser = _browser()
    if browser is None:
        raise RecsightError("PDF reports need Chromium or Chrome on the PATH (Debian: apt-get install chromium); "
                            "HTML and CSV reports work without it")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="recsight-pdf-") as tmp:
        source, target = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        source.write_bytes(page)
        try:
            done = _chromium(browser, ["--no-pdf-header-footer", f"--print-to-pdf={target}", source.as_uri()],
                             Path(tmp), _PDF_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise RecsightError(f"Chromium did not print the report within {_PDF_TIMEOUT_S} s") from None
        except OSError as exc:
            raise RecsightError(f"cannot start {browser} to print the PDF: {exc.strerror or exc}") from None
        if not target.is_file() or target.stat().st_size == 0:
            detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise RecsightError(f"Chromium could not print the report (exit {done.returncode})"
                                + (f": {detail[-1][:200]}" if detail else ""))
        data = target.read_bytes()
    log.info("printed a %d-byte PDF in %.1f s", len(data), time.perf_counter() - started)
    return data


# ----------------------------------------------------------------- CSV


def _csv_text(value: str) -> str:
    """Shop text a spreadsheet must not run as a formula (``=cmd|...``): prefixed with ``'``."""
    return "'" + value if value.startswith(_CSV_TEXT_TRIGGERS) else value


def _f(value: float) -> str:
    """A float exactly as stored (repr round-trips), so sums in a spreadsheet match the score."""
    return repr(float(value))


def _csv(explanation: CustomerExplanation) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    shared = {"user_id": explanation.user_id, "generated_at": explanation.generated_at.isoformat(),
              "model_version": explanation.model_version}
    for item in explanation.items:
        about = {**shared, "rank": item.rank, "item_id": item.item_id, "title": _csv_text(item.title),
                 "score": _f(item.score), "base_value": _f(item.base_value)}
        for c in item.contributions:
            writer.writerow({**about, "kind": "contribution", "feature": c.feature, "label": _csv_text(c.label),
                             "group": c.group, "value": "" if c.value is None else _f(c.value),
                             "contribution": _f(c.contribution)})
        for h in item.history:
            writer.writerow({**about, "kind": "history", "event_item_id": h.item_id,
                             "event_title": _csv_text(h.title), "event_type": h.event_type,
                             "event_ts": h.ts.isoformat(), "attribution": _f(h.attribution),
                             "attention": _f(h.attention), "score_share": _f(h.score_share)})
    return buffer.getvalue().encode("utf-8")
