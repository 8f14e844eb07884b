"""The few plain HTML pages outside Dash: sign-in, sign-out, and "not for your role".

They are small server-rendered documents (Jinja, autoescaped) styled with the vendored Bootstrap
and Recsight CSS, so signing in works without JavaScript and without loading the Dash bundle,
which only signed-in users may fetch.
"""

from __future__ import annotations

from typing import Any

import flask

__all__ = ["render_sign_in", "render_sign_out", "render_forbidden"]

_HEAD = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} · Recsight</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{{ assets }}bootstrap.min.css">
<link rel="stylesheet" href="{{ assets }}recsight.css">
<style>
  .rs-auth { min-height: 100vh; display: flex; align-items: center; justify-content: center;
             padding: 2rem 1rem; background: var(--rs-sidebar); }
  .rs-auth-card { --bs-body-bg: #fff; --bs-card-bg: #fff; width: 100%; max-width: 400px; border: 0;
                  border-radius: var(--rs-radius); box-shadow: 0 12px 32px rgba(0, 0, 0, 0.25); }
  .rs-auth .rs-brand-name { color: var(--rs-ink); }
  .rs-auth .form-label { font-size: 0.8rem; font-weight: 600; color: var(--rs-muted); }
  .rs-auth code { font-size: 0.8rem; }
</style>
</head>
<body>
<main class="rs-auth">
<div class="card rs-auth-card"><div class="card-body p-4">
<div class="rs-brand mb-1 px-0">
  <span class="rs-brand-mark" aria-hidden="true"></span><span class="rs-brand-name">Recsight</span>
</div>
<p class="text-body-secondary small mb-4">Explainable recommendations</p>
"""

_FOOT = """
</div></div>
</main>
</body>
</html>
"""

_SIGN_IN = _HEAD + """
<h1 class="h5 mb-3">Sign in</h1>
{% if notice %}<div class="alert alert-info py-2 small" id="rs-login-notice" role="status">{{ notice }}</div>{% endif %}
{% if error %}<div class="alert alert-danger py-2 small" id="rs-login-error" role="alert">{{ error }}</div>{% endif %}
<form method="post" action="{{ action }}" id="rs-login-form" novalidate>
  <input type="hidden" name="csrf" value="{{ csrf }}">
  <input type="hidden" name="next" value="{{ next }}">
  <div class="mb-3">
    <label class="form-label" for="rs-login-name">User name</label>
    <input class="form-control" id="rs-login-name" name="name" autocomplete="username" required
           maxlength="64" value="{{ name }}" {% if not name %}autofocus{% endif %}>
  </div>
  <div class="mb-4">
    <label class="form-label" for="rs-login-password">Password</label>
    <input class="form-control" id="rs-login-password" name="password" type="password"
           autocomplete="current-password" required maxlength="1024" {% if name %}autofocus{% endif %}>
  </div>
  <button class="btn btn-primary w-100" type="submit" id="rs-login-submit">Sign in</button>
</form>
{% if no_users %}
<p class="small text-body-secondary mt-4 mb-0" id="rs-login-no-users">There are no users yet. An administrator
creates the first one on the server with <code>python cli.py users add NAME --role admin</code>.</p>
{% endif %}
""" + _FOOT

_SIGN_OUT = _HEAD + """
<h1 class="h5 mb-3">Sign out</h1>
<p class="mb-4">You are signed in as <strong>{{ name }}</strong> ({{ role }}).</p>
<form method="post" action="{{ action }}">
  <button class="btn btn-primary w-100" type="submit" id="rs-sign-out-confirm">Sign out</button>
</form>
""" + _FOOT

_FORBIDDEN = _HEAD + """
<h1 class="h5 mb-3" id="rs-forbidden">Not available to your role</h1>
<p>You are signed in as <strong>{{ name }}</strong> ({{ role }}). This page is open to:
{{ allowed }}.</p>
{% if links %}
<p class="mb-2">Pages you can open:</p>
<ul class="mb-4" id="rs-forbidden-links">
{% for label, href in links %}<li><a href="{{ href }}">{{ label }}</a></li>{% endfor %}
</ul>
{% else %}
<p class="mb-4" id="rs-forbidden-none">No page of this app is open to the {{ role }} role yet.</p>
{% endif %}
<form method="post" action="{{ sign_out }}">
  <button class="btn btn-outline-secondary btn-sm" type="submit" id="rs-forbidden-sign-out">
    Sign in as someone else</button>
</form>
""" + _FOOT


def render_sign_in(assets: str, action: str, csrf: str, next_path: str, *, name: str = "", error: str = "",
                   notice: str = "", no_users: bool = False) -> str:
    """The sign-in form; ``name`` is kept after a failed try so only the password is retyped."""
    return _render(_SIGN_IN, "Sign in", assets, action=action, csrf=csrf, next=next_path, name=name, error=error,
                   notice=notice, no_users=no_users)


def render_sign_out(assets: str, action: str, name: str, role: str) -> str:
    """A one-button confirmation, so a link alone cannot sign anybody out."""
    return _render(_SIGN_OUT, "Sign out", assets, action=action, name=name, role=role)


def render_forbidden(assets: str, name: str, role: str, allowed_roles: list[str], links: list[tuple[str, str]],
                     sign_out: str) -> str:
    """The 403 page: who you are, who may see this page, and where you can go instead."""
    return _render(_FORBIDDEN, "Not available", assets, name=name, role=role,
                   allowed=", ".join(allowed_roles) or "nobody", links=links, sign_out=sign_out)


def _render(template: str, title: str, assets: str, **values: Any) -> str:
    return flask.render_template_string(template, title=title, assets=assets, **values)
