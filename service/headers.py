"""The security headers on every answer of the app's server, and what browsers may keep of it.

:func:`install` adds one ``after_request`` hook (``service.web.install`` calls it) that sets:

* ``Content-Security-Policy``: scripts only from this server, plus the inline scripts of the
  page being answered, allowed one by one by their SHA-256 hash; no plugins, no ``<base>``
  tricks, forms post only here, and ``frame-ancestors 'none'`` (with ``X-Frame-Options: DENY``
  for old browsers), so no other site can frame a page and trick a click. Dash's index page
  carries inline scripts (the renderer's start-up line and the clientside callbacks, which
  pages register per app); hashing the scripts of each HTML answer as it leaves means the
  policy can never fall out of step with them, and no ``'unsafe-inline'`` is needed for
  scripts. Styles do need ``'unsafe-inline'``: Plotly and the Dash components write ``<style>``
  elements at run time, and a style cannot run code.
* ``X-Content-Type-Options: nosniff``, so a browser never runs an answer as another type.
* ``Referrer-Policy: same-origin``: addresses here hold customer pseudonyms, and no other site
  learns them from a link; same-origin requests keep their ``Origin`` header, which
  ``service.origin`` checks.
* ``Cache-Control: no-store`` on everything but the static files (Dash's versioned bundles,
  the stylesheets and images under ``assets/``): pages, Dash's layout and callback answers hold
  customer data, and a browser must not show them from its cache (Back after sign-out).
* over TLS (``Settings.tls``), ``Strict-Transport-Security``, so a browser never falls back to
  plain HTTP, where the ``Secure`` cookie would not be sent anyway.
"""

from __future__ import annotations

import base64
import hashlib
import re

import flask
from werkzeug.wrappers import Response

__all__ = ["install", "POLICY", "script_hashes"]

POLICY = (
    "default-src 'self'",
    "script-src 'self'{hashes}",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
)
_HSTS = "max-age=31536000"
_INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc\s*=)[^>]*>(.*?)</script\s*>", re.IGNORECASE | re.DOTALL)
_MAX_HASHED_BODY = 2_000_000  # a page larger than this is no Dash index page: hash nothing in it


def install(server: flask.Flask, *, static_prefixes: tuple[str, ...], tls: bool) -> None:
    """Set the headers on every answer of ``server``; paths under ``static_prefixes`` (versioned
    bundles, stylesheets) may be cached by browsers, nothing else may."""

    @server.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        headers["Content-Security-Policy"] = "; ".join(POLICY).format(hashes=_hash_sources(response))
        headers["X-Frame-Options"] = "DENY"
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "same-origin"
        if not flask.request.path.startswith(static_prefixes):
            headers["Cache-Control"] = "no-store"
        if tls:
            headers["Strict-Transport-Security"] = _HSTS
        return response


def script_hashes(html: str) -> list[str]:
    """The CSP sources (``'sha256-...'``) allowing exactly the inline scripts of ``html``."""
    return [f"'sha256-{base64.b64encode(hashlib.sha256(body.encode('utf-8')).digest()).decode('ascii')}'"
            for body in _INLINE_SCRIPT.findall(html) if body.strip()]


def _hash_sources(response: Response) -> str:
    """`` 'sha256-...' ...`` for an HTML answer's inline scripts; '' for anything else."""
    if response.mimetype != "text/html" or response.direct_passthrough or response.is_streamed:
        return ""
    length = response.calculate_content_length()
    if length is None or length > _MAX_HASHED_BODY:
        return ""
    hashes = script_hashes(response.get_data(as_text=True))
    return "".join(" " + source for source in dict.fromkeys(hashes))
