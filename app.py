"""The Dash application shell: create_app(settings), the navigation, and serving under waitress.

Pages live in ``pages/`` (Dash ``use_pages``), one thin module each; this module only builds the
frame around them (sidebar with the registered pages, content area) and serves the Flask server
with a real WSGI server. Pages read the settings of the app serving the request from its Flask
config (``settings.SETTINGS_KEY``, read by ``pages._parts.current_settings``), so several apps
(tests) can live in one process and no page imports this module.

The shop database is never held open here: pages open short-lived read-only connections per
request (``analytics.db.connect_read_only``), so an ingest or training run can replace the file
while the app keeps serving.

Every request is guarded (``service.web.install``): people sign in at ``/login``, the sidebar
lists only the pages their role may open, and pages, callbacks and downloads the role may not
reach answer 403 (the role matrix is ``service.access``).

``server`` and ``app`` are module attributes created on first access from the environment
(``load_settings()``), so ``waitress-serve app:server`` or ``gunicorn app:server`` work while a
plain ``import app`` (``cli.py serve``) builds nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import dash
import dash_bootstrap_components as dbc
import flask
from dash import html

from pages._parts import current_settings
from service import access, api, impressions_api, intake_api, web
from service.users import User, list_users
from settings import SETTINGS_KEY, Settings, load_settings
from workflows import compactor, recommenders

__all__ = ["create_app", "serve", "nav_pages", "THREADS"]

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent
THREADS = 8  # waitress worker threads: a few analysts and agents at once, each request short
_NOT_FOUND_MODULE = "not_found_404"


def create_app(settings: Settings) -> dash.Dash:
    """Build the Dash app for ``settings``: every page under ``pages/``, assets served locally.

    Dash registers page callbacks globally and hands them to the first app that serves a
    request, so in one process create an app and let it serve before creating the next.
    """
    settings.require_session_key()  # no sign-in without a key from the environment: fail before building
    app = dash.Dash(
        __name__,
        use_pages=True,
        pages_folder="pages",
        assets_folder=str(ROOT / "assets"),
        serve_locally=True,
        title="Recsight",
        update_title=None,
        suppress_callback_exceptions=True,  # page layouts are built per request, not at start-up
        meta_tags=[{"name": "viewport", "content": "width=device-width, initial-scale=1"}],
    )
    app.server.config[SETTINGS_KEY] = settings
    app.layout = _shell
    web.install(app, settings, nav_pages, shell_module=__name__)
    # After the guard, so the API's own checks run behind it (Flask runs them in this order).
    app.server.register_blueprint(api.blueprint(settings))
    app.server.register_blueprint(intake_api.blueprint(settings))  # POST /api/v1/events and /items
    app.server.register_blueprint(impressions_api.blueprint(settings))  # POST /api/v1/impressions
    return app


def nav_pages(registry: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The pages the sidebar lists, in their ``order``: every registered page except the 404
    page and pages registered with ``nav=False`` (for example deep-link-only routes)."""
    pages = (dash.page_registry if registry is None else registry).values()
    shown = [
        page for page in pages
        if not page["module"].endswith(_NOT_FOUND_MODULE) and page.get("nav", True)
    ]
    return sorted(shown, key=lambda page: (page.get("order") is None, page.get("order") or 0, page["name"]))


def serve(settings: Settings) -> None:
    """Serve the app on ``settings.host:settings.port`` under waitress until interrupted."""
    import waitress

    app = create_app(settings)
    if not Path(settings.db_path).exists():
        log.warning("database %s does not exist yet: the pages will say so until it is ingested", settings.db_path)
    if not list_users(settings.users_file):
        log.warning("nobody can sign in yet: create a user with `python cli.py users add NAME --role admin` "
                    "(users file %s)", settings.users_file)
    # The live segment's compaction timer: here, run once per server process, not in create_app
    # (tests build many apps and must not compact behind their own back).
    compactor.start(settings.db_path, settings.compact_minutes, after=lambda: recommenders.recommender_for(settings))
    logging.getLogger("waitress").setLevel(logging.INFO)  # its "Serving on http://..." line
    waitress.serve(app.server, host=settings.host, port=settings.port, threads=THREADS, ident="recsight")


# --------------------------------------------------------------------------- layout


def _shell() -> html.Div:
    """The frame around every page; a function so the sidebar reflects the registry and the
    signed-in user's role per request."""
    settings = current_settings()
    user = access.current_user()
    role = user.role if user is not None else None
    links = [
        dbc.NavLink(
            page["name"],
            href=page["relative_path"],
            active="exact" if page["path"] == "/" else "partial",
            className="rs-nav-link",
        )
        for page in nav_pages()
        if role in access.page_roles(page["path"])
    ]
    return html.Div(className="rs-shell", children=[
        html.Aside(className="rs-sidebar", children=[
            html.Div(className="rs-brand", children=[
                html.Span(className="rs-brand-mark", **{"aria-hidden": "true"}),
                html.Span("Recsight", className="rs-brand-name"),
            ]),
            html.Div("Explainable recommendations", className="rs-brand-tagline"),
            dbc.Nav(links, vertical=True, pills=True, className="rs-nav", id="rs-nav"),
            html.Div(className="rs-sidebar-foot", children=[
                html.Div("Shop database", className="rs-foot-label"),
                html.Div(Path(settings.db_path).name, className="rs-foot-value", title=str(settings.db_path)),
                _signed_in(user),
            ]),
        ]),
        html.Main(dash.page_container, className="rs-main"),
    ])


def _signed_in(user: User | None) -> html.Div | None:
    """Who is signed in, and the sign-out button (a POST form: a link alone signs nobody out)."""
    if user is None:
        return None
    return html.Div(className="rs-signed-in mt-3", children=[
        html.Div("Signed in as", className="rs-foot-label"),
        html.Div(className="rs-foot-value d-flex align-items-center gap-2", children=[
            html.Span(user.name, id="rs-user-name", title=user.name, className="text-truncate"),
            dbc.Badge(user.role, id="rs-user-role", color="secondary", className="fw-normal"),
        ]),
        html.Form(action=flask.url_for(f"{web.BLUEPRINT}.logout"), method="post", className="mt-2", children=[
            html.Button("Sign out", type="submit", id="rs-sign-out", className="btn btn-sm btn-outline-light w-100"),
        ]),
    ])


def __getattr__(name: str) -> Any:
    """``app`` and ``server`` for WSGI servers, built once from the environment on first use."""
    if name in ("app", "server"):
        global _default_app
        if _default_app is None:
            _default_app = create_app(load_settings())
        return _default_app if name == "app" else _default_app.server
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_default_app: dash.Dash | None = None


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(load_settings())
