"""Deep links name customers by pseudonym only.

A link ``/user/<shop id>`` (from a ticket, a mail, the address bar) still works, but the shop id
must not stay in the browser's address bar and history, in bookmarks, or in the ``Referer`` of
whatever the page loads. So when a signed-in user allowed on the page asks for such an address,
:func:`on_page_visit` answers with a redirect to ``/user/<pseudonym>`` before any page is served:
browsers record only the address a redirect ends at, so the shop id never becomes a history
entry. (Navigation inside the app that reaches such an address without a page load is handled by
the page itself: ``pages/user.py`` pseudonymises the id, and its address-bar script replaces the
entry.) A customer variable that is not a valid id, or a server without the shop's secret, sends
the browser to the bare page instead, so no raw text stays in the address either.

It also notes, for the customer page, whether the visit was started by another site
(``service.origin``): a link elsewhere may open a customer's page, but only the agent's own click
then looks the customer up (an audited action), never the link alone
(:func:`opened_from_elsewhere`, read once by the page's layout).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import flask
from werkzeug.wrappers import Response

from analytics.customers import clean_customer_ref, reference_pseudonym
from errors import RecsightError
from service import access, origin

__all__ = ["CUSTOMER_VARIABLE", "on_page_visit", "opened_from_elsewhere"]

CUSTOMER_VARIABLE = "user_id"  # a page path variable that names a customer (pages/user.py)
_FROM_ELSEWHERE = "link_from_elsewhere"  # session key: the next customer page needs a click


def on_page_visit(config: access.AccessConfig) -> Response | None:
    """For a page request the guard let through: a redirect to the pseudonymous address when the
    URL names a customer by anything but a pseudonym, else None (serve the page)."""
    request = flask.request
    if request.method not in ("GET", "HEAD"):
        return None
    stripped = config.strip_relative_path(request.path)
    page, variables = _page_and_variables(stripped if isinstance(stripped, str) else "")
    typed = (variables or {}).get(CUSTOMER_VARIABLE)
    if page is None or typed is None:
        return None
    _note_origin()
    pseudonym = _pseudonym(typed, config.settings.secret)
    if pseudonym == typed:
        return None
    path = request.path.rstrip("/")
    prefix = path[: len(path) - len(stripped)] if stripped and path.endswith(stripped) else "/"
    if pseudonym is None:
        return flask.redirect(prefix + page["path"].strip("/"), 302)
    target = prefix + page["path_template"].strip("/").replace(f"<{CUSTOMER_VARIABLE}>", quote(pseudonym, safe=""))
    query = request.query_string.decode("latin-1")
    return flask.redirect(target + (f"?{query}" if query else ""), 302)


def opened_from_elsewhere() -> bool:
    """Whether the customer page being rendered was opened by a link on another site (once: the
    answer is forgotten as it is read, so the agent's next visit looks up as usual)."""
    return flask.has_request_context() and bool(flask.session.pop(_FROM_ELSEWHERE, False))


def _note_origin() -> None:
    if origin.started_elsewhere():
        flask.session[_FROM_ELSEWHERE] = True
    elif _FROM_ELSEWHERE in flask.session:
        flask.session.pop(_FROM_ELSEWHERE)


def _pseudonym(typed: str, secret: str) -> str | None:
    """The pseudonym to show for ``typed``; None when it is no id, or there is no secret."""
    try:
        return reference_pseudonym(clean_customer_ref(typed), secret)
    except RecsightError:
        return None


def _page_and_variables(stripped: str) -> tuple[dict[str, Any] | None, dict[str, str] | None]:
    from dash._pages import _path_to_page  # private, pinned dash: the resolver the router uses

    page, variables = _path_to_page(stripped)
    return (page or None), variables
