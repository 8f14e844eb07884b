"""Text that does not fit its box, found from element bounds in the browser (not from pixels).

:func:`overflows` runs one script in the page and returns one line per problem a reader would
see: the page scrolls sideways; a text is cut by its box (an ellipsis, a hidden overflow) or
needs a sideways scroll; a chart's title, axis title, tick label, annotation or bar number lies
partly outside the chart; two texts of one chart overlap. Hidden elements (closed dialogs,
collapsed sections) are skipped, so a test opens what it wants checked first.
"""

from __future__ import annotations

import time

__all__ = ["overflows"]

_SCRIPT = r"""
const scope = document.querySelector(arguments[0]) || document.body;
const slack = 1.5;
const problems = [];
const name = (el) => {
  const id = el.id ? '#' + el.id : '';
  const cls = (el.getAttribute('class') || '').split(/\s+/).filter(Boolean).slice(0, 2).join('.');
  let owner = el.closest('[id]');
  const where = owner && owner !== el ? ' in #' + owner.id : '';
  return el.tagName.toLowerCase() + id + (cls ? '.' + cls : '') + where;
};
const said = (el) => (el.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 60);
const shown = (el) => {
  if (!el.getClientRects().length) return false;
  for (let e = el; e && e.nodeType === 1; e = e.parentElement) {
    const st = getComputedStyle(e);
    if (st.display === 'none' || st.visibility === 'hidden' || parseFloat(st.opacity) === 0) return false;
  }
  return true;
};
const ownText = (el) => Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());

if (document.documentElement.scrollWidth > window.innerWidth + slack) {
  const wide = Array.from(document.body.querySelectorAll('*')).filter(
    (el) => el.getBoundingClientRect().right > window.innerWidth + slack
      && !Array.from(el.children).some((c) => c.getBoundingClientRect().right > window.innerWidth + slack));
  problems.push(`the page scrolls sideways: ${document.documentElement.scrollWidth}px wide in a `
    + `${window.innerWidth}px window (${wide.slice(0, 3).map(name).join(', ')})`);
}
for (const el of scope.querySelectorAll('*')) {
  if (el.closest('svg') || !shown(el)) continue;
  const st = getComputedStyle(el);
  const wider = el.clientWidth > 1 && el.scrollWidth > el.clientWidth + slack;  // 1 px: for screen readers only
  if (wider && (st.overflowX === 'auto' || st.overflowX === 'scroll')) {
    problems.push(`${name(el)} needs a sideways scroll (${el.scrollWidth}px in ${el.clientWidth}px): "${said(el)}"`);
    continue;
  }
  if (wider && st.overflowX !== 'visible' && (ownText(el) || st.textOverflow === 'ellipsis')) {
    problems.push(`${name(el)} is cut (${el.scrollWidth}px of text in ${el.clientWidth}px): "${said(el)}"`);
    continue;
  }
  if (!ownText(el)) continue;
  const r = el.getBoundingClientRect();
  if (r.right > window.innerWidth + slack) {
    problems.push(`${name(el)} runs off the window's right edge: "${said(el)}"`);
  }
}
for (const plot of scope.querySelectorAll('.js-plotly-plot')) {
  if (!shown(plot)) continue;
  const box = plot.querySelector('.main-svg');
  if (!box) continue;
  const b = box.getBoundingClientRect();
  const texts = [];
  for (const t of plot.querySelectorAll('svg text')) {
    if (t.closest('.hoverlayer') || !said(t) || !shown(t)) continue;
    const r = t.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    const outside = r.left < b.left - slack || r.right > b.right + slack
      || r.top < b.top - slack || r.bottom > b.bottom + slack;
    if (outside) problems.push(`#${plot.id || plot.parentElement.id}: "${said(t)}" is cut by the chart's edge`);
    texts.push([t, r]);
  }
  for (let i = 0; i < texts.length; i++) {
    for (let j = i + 1; j < texts.length; j++) {
      const [ta, a] = texts[i], [tb, c] = texts[j];
      const w = Math.min(a.right, c.right) - Math.max(a.left, c.left);
      const h = Math.min(a.bottom, c.bottom) - Math.max(a.top, c.top);
      if (w <= 2 || h <= 2) continue;
      if (w * h > 0.2 * Math.min(a.width * a.height, c.width * c.height)) {
        problems.push(`#${plot.id || plot.parentElement.id}: "${said(ta)}" overlaps "${said(tb)}"`);
      }
    }
  }
}
return problems;
"""


def overflows(driver, scope_css: str = "body", settle_s: float = 3.0) -> list[str]:
    """Every overflowing or overlapping text under ``scope_css``, once the page has settled: a grid
    or a chart may take a moment to fit a new width, so an overflow counts only if it is still
    there after ``settle_s`` seconds."""
    deadline = time.monotonic() + settle_s
    while True:
        problems = list(driver.execute_script(_SCRIPT, scope_css))
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(0.25)
