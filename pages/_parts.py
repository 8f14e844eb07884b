"""Pieces every page module shares: the page frame, message wording and the callback boundary.

The leading underscore keeps Dash's page scanner from registering this module as a page.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, TypeVar

from dash import html
from dash.exceptions import PreventUpdate

from errors import RecsightError

__all__ = ["UNEXPECTED", "page", "sentence", "capitalised", "guarded"]

log = logging.getLogger(__name__)

T = TypeVar("T")

UNEXPECTED = "Something went wrong on the server; the error has been logged."


def page(title: str, lead: str, *children: Any, title_id: str | None = None) -> html.Div:
    """A page: its heading, one line saying what it is for, then ``children``."""
    heading = html.H1(title, className="rs-page-title", **({"id": title_id} if title_id else {}))
    return html.Div(className="rs-page", children=[
        html.Header(className="rs-page-head", children=[heading, html.P(lead, className="rs-page-lead")]),
        *children,
    ])


def sentence(message: str) -> str:
    """``message`` as a sentence a person reads: capitalised, with a full stop."""
    text = message.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def capitalised(name: str) -> str:
    """A name from the data (a segment such as "at risk") as a label: "At risk"."""
    return name[:1].upper() + name[1:]


def guarded(where: str, fn: Callable[[], T], on_error: Callable[[str], T]) -> T:
    """Run a callback body. A RecsightError becomes its message as a sentence; anything else is a
    bug, logged with its traceback and shown as one line: the browser never sees a traceback."""
    try:
        return fn()
    except PreventUpdate:
        raise
    except RecsightError as exc:
        return on_error(sentence(str(exc)))
    except Exception:  # noqa: BLE001 - the page boundary: log the bug, show one line
        log.exception("%s failed", where)
        return on_error(UNEXPECTED)
