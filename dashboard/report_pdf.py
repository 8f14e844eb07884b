"""Headless Chromium, the reports' printer: charts drawn to SVG by plotly.js, pages printed to PDF.

Chromium only ever opens our own temporary page, with a throwaway profile and no network service,
and reads local files and fonts only. Drawing the charts in the browser (one start for every
chart of a report, or of a batch chunk) keeps the page free of scripts: it receives finished SVG.
"""

from __future__ import annotations

import html
import json
import logging
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import plotly
import plotly.graph_objects as go

from errors import RecsightError

__all__ = ["svg_charts", "print_pdf"]

log = logging.getLogger(__name__)

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
_CHART_WIDTH = 700  # px, for a figure without a width of its own: an A4 page's printable width at 96 dpi


def _browser() -> str | None:
    """The first Chromium or Chrome on the PATH, or None."""
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


def svg_charts(figs: list[go.Figure]) -> list[str] | None:
    """Each figure as an inline SVG string at its layout's size, drawn in one headless Chromium; None
    if they cannot be drawn (no browser, no plotly.js, a failed page), so the caller draws HTML bars
    instead."""
    if not figs:
        return []
    browser = _browser()
    if browser is None:
        log.warning("no Chromium/Chrome found: report charts are drawn as HTML bars")
        return None
    started = time.perf_counter()
    specs = "[" + ",".join(f'{{"figure":{fig.to_json()},"width":{int(fig.layout.width or _CHART_WIDTH)},'
                           f'"height":{int(fig.layout.height)}}}' for fig in figs) + "]"
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


def print_pdf(page: bytes) -> bytes:
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
