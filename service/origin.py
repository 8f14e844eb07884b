"""Requests another site made a browser send: refused where they could act or leave an audit row.

The session cookie is ``SameSite=Lax``, so browsers leave it off requests other sites start,
except one kind: a top-level navigation by GET (a link, ``window.location``, a redirect). The
guard (``service.web``) asks :func:`refusal` before anything else, and refuses with ``403``:

* every request that is not GET or HEAD (sign-in and sign-out forms, Dash's callbacks) that
  another site started, so no other site can post here with this browser, not even a sibling
  site on the same host (``SameSite`` treats another port of the same host as the same site);
* every request to the JSON API that another site started, GET included: its routes look a
  customer up and append an audit row in the signed-in user's name, and they are not meant for
  navigation anyway. A browser that saved basic-auth credentials sends them as ambiently as a
  cookie, so this holds whatever the credentials.

Pages themselves stay reachable from other sites (a link from a ticket to ``/user/<pseudonym>``
is the point of a deep link); what a page looks up runs through callbacks, which are POSTs.

Who started a request, browsers say in ``Sec-Fetch-Site`` (every current browser); ``none`` (an
address typed or a bookmark) and ``same-origin`` pass. Without that header, an ``Origin`` (or
``Referer``) naming another host is refused; a request with neither comes from no browser (a
script, ``curl``, an API client with basic auth) and could not carry another site's intent, so it
passes. Hosts are compared by name and port only, so a TLS-terminating proxy in front (which makes
the scheme differ) does not refuse the app's own pages; the proxy must pass the ``Host`` header on.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import flask
from werkzeug.wrappers import Response

from service.responses import API_PREFIX, error_response

__all__ = ["refusal", "started_elsewhere"]

log = logging.getLogger(__name__)

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_OWN_SITE = frozenset({"same-origin", "none"})


def refusal() -> Response | None:
    """A 403 for the current request if another site started it and it could act; else None."""
    request = flask.request
    is_api = request.path == API_PREFIX.rstrip("/") or request.path.startswith(API_PREFIX)
    if request.method in _SAFE_METHODS and not is_api:
        return None
    if not started_elsewhere():
        return None
    log.warning("refused %s %s: started by another site", request.method, request.endpoint or "unknown route")
    return error_response(403, "refused: this request was started by another site")


def started_elsewhere() -> bool:
    """Whether the browser says another site (or a sibling site) started the current request."""
    headers = flask.request.headers
    fetch_site = headers.get("Sec-Fetch-Site", "").strip().lower()
    if fetch_site:
        return fetch_site not in _OWN_SITE
    origin = headers.get("Origin")
    if origin is not None:
        return origin.strip() == "null" or not _same_host(origin)
    referer = headers.get("Referer")
    return referer is not None and not _same_host(referer)


def _same_host(url: str) -> bool:
    try:
        host = urlsplit(url.strip()).netloc.lower()
    except ValueError:
        return False
    return bool(host) and host == flask.request.host.lower()
