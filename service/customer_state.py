"""Client-held state that names a customer: sealed by the server and bound to the session.

Why: Dash keeps a page's state in the browser (``dcc.Store``) and sends it back with each
callback request, so whatever a callback reads from it is whatever the client chose to send.
The customer lookup keeps the customer it found there (pseudonym, model version, the listed
items), and its callbacks show that customer's reasons, explanations and reports. Trusting it
let a support login post a store naming any pseudonym and read that customer's reasons with no
audit row, since only the lookup itself is audited.

So such a store is *sealed*: :func:`seal` adds an HMAC-SHA256 (:data:`SEAL`) over the store's
content and the signed-in session (:func:`service.access.session_binding`: the user, the sign-in
time and the server's session id), keyed from the server's session key. A seal is only ever
made by the lookup callback, right after the lookup wrote its audit row, or by the page's live
refresh for a store that verified (the same customer, with the refreshed list and what the page
has now seen of their events, after the refresh's own audit row), so a store that verifies is a
customer this session looked up, and audited, itself. Replaying an older sealed store of the same
session only shows an older state of that same customer. It is void in any other
session, for any other user, after sign-out, and as soon as one byte of its content changes.

Two places check it:

* the guard, for every callback request, before the callback runs: each input or state value at a
  position registered with :func:`protect` must be empty or verify (:func:`forged_in`), else the
  request is refused with 403 and nothing runs;
* the page's callbacks again, through :func:`verified`, so a body called some other way cannot
  use an unsealed store either.

The seal is not encryption: the browser may read the store (the page shows all of it anyway).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any

import flask

from errors import RecsightError
from service import access, audit
from service.callbacks import CallbackCall

__all__ = ["SEAL", "protect", "protected", "seal", "verified", "is_sealed", "forged_in", "refusal_reason"]

log = logging.getLogger(__name__)

SEAL = "seal"  # the store key holding the seal
_CONTEXT = b"recsight customer state v1"  # the seal's key is derived for this use only
_protected: set[tuple[str, str]] = set()  # (component id, property) of stores that name a customer


def protect(component_id: str, prop: str) -> None:
    """Declare ``component_id.prop`` a store naming a customer: the guard then refuses any
    callback request whose value there is not sealed for its session."""
    _protected.add((component_id, prop))


def protected() -> frozenset[tuple[str, str]]:
    """The (component id, property) pairs declared with :func:`protect`."""
    return frozenset(_protected)


def seal(store: dict[str, Any]) -> dict[str, Any]:
    """``store`` with its seal for the current request's session. Raises RecsightError outside a
    signed-in browser session (nothing to bind to)."""
    content = {key: value for key, value in store.items() if key != SEAL}
    return {**content, SEAL: _mac(content, _binding())}


def is_sealed(store: Any) -> bool:
    """Whether ``store`` carries a valid seal for the current request's session."""
    if not isinstance(store, dict) or not isinstance(store.get(SEAL), str):
        return False
    binding = access.session_binding()
    if binding is None:
        return False
    content = {key: value for key, value in store.items() if key != SEAL}
    try:
        expected = _mac(content, binding)
    except (TypeError, ValueError):  # content JSON cannot hold (it came from JSON: unlikely)
        return False
    return hmac.compare_digest(expected, store[SEAL])


def verified(store: Any) -> dict[str, Any] | None:
    """``store`` if it verifies for this session, None for no store (nobody looked up yet: the
    callback says so itself); RecsightError (a message for the page) for anything else."""
    if store is None:
        return None
    if not is_sealed(store):
        raise RecsightError("this customer was not looked up in this session: look the customer up again")
    return store


def forged_in(call: CallbackCall) -> str | None:
    """The first protected input or state of ``call`` that holds a value without a valid seal
    (as ``id.property``), or None when every one is empty or verifies."""
    for dependency, item in call.sent():
        if not isinstance(dependency.id, str) or (dependency.id, dependency.prop) not in _protected:
            continue
        value = item.get("value") if isinstance(item, dict) else None
        if value is not None and not is_sealed(value):
            return f"{dependency.id}.{dependency.prop}"
    return None


def refusal_reason(call: CallbackCall) -> str | None:
    """For the guard (a :data:`service.callbacks.Check`): why ``call`` may not run, or None. A
    refusal is logged and audited (no customer named: the store's claim is not to be trusted),
    so an admin sees who tried."""
    where = forged_in(call)
    if where is None:
        return None
    user = access.current_user()
    log.warning("refused a callback for %s (%s): %s is not sealed for this session", user.name if user else "nobody",
                user.role if user else "-", where)
    try:
        access.record_action(audit.ACCESS_DENIED, detail=f"customer state {where} not issued to this session")
    except RecsightError as exc:
        log.error("refused customer state not audited: %s", exc)
    return "this customer was not looked up in this session: look the customer up again"


def _binding() -> str:
    binding = access.session_binding()
    if binding is None:
        raise RecsightError("nobody is signed in")
    return binding


def _mac(content: dict[str, Any], binding: str) -> str:
    key = hmac.new(_session_key(), _CONTEXT, hashlib.sha256).digest()
    message = json.dumps([binding, content], sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                         allow_nan=False)
    return hmac.new(key, message.encode("ascii"), hashlib.sha256).hexdigest()


def _session_key() -> bytes:
    secret = flask.current_app.secret_key if flask.has_app_context() else None
    if not secret:
        raise RecsightError("the server has no session key")
    return secret if isinstance(secret, bytes) else str(secret).encode("utf-8")
