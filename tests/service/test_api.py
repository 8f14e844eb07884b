"""The JSON API on a small trained shop, through the real app (guard included) and Flask's test
client: what support tools get for a customer named by shop id or pseudonym, the same objects as
`cli.py recommend --explain --json`, bodies that match the OpenAPI document, and a JSON error with
the right status for every kind of bad request or broken state."""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
from typing import Any

import flask
import pytest

import cli
from errors import RecsightError
from service import api, audit, openapi
from service.users import ANALYST, SUPPORT
from settings import Settings
from tests.service.support import ACCOUNTS, sign_in
from tests.shop import TrainedShop
from workflows.recommenders import forget_all

BASE = openapi.API_BASE


@pytest.fixture(scope="module")
def customer(trained_shop: TrainedShop) -> tuple[str, str]:
    """A customer with history: (raw shop id, pseudonym)."""
    raw = trained_shop.raw_ids[3]
    return raw, trained_shop.pseudonym(raw)


def _validate(spec: Any, path: str, response: Any) -> None:
    """The response is one the OpenAPI document promises (status, media type, body schema)."""
    spec[path]["GET"].validate_response(response)


def _error(response: Any, status: int) -> str:
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"status", "message"} and body["status"] == status
    assert "Traceback" not in body["message"] and "\n" not in body["message"]
    return body["message"]


# --------------------------------------------------------------------------- what a client gets


def test_recommendations_by_shop_id_and_by_pseudonym_are_the_same_list(support, customer, spec):
    raw, pseudonym = customer
    by_id = support.get(f"{BASE}/users/{raw}/recommendations?k=5")
    by_pseudonym = support.get(f"{BASE}/users/{pseudonym}/recommendations?k=5")
    assert by_id.status_code == 200 and by_id.get_json() == by_pseudonym.get_json()
    body = by_id.get_json()
    assert body["user_id"] == pseudonym and not body["cold_start"]
    assert [item["rank"] for item in body["items"]] == [1, 2, 3, 4, 5]
    assert all("explanation" not in item for item in body["items"])
    assert raw not in by_id.get_data(as_text=True)
    assert by_id.headers["Cache-Control"] == "no-store"
    _validate(spec, f"{BASE}/users/{{id}}/recommendations", by_id)


def test_explained_recommendations_are_the_objects_of_the_command_line(support, customer, trained_shop, spec,
                                                                      capsys):
    raw, _ = customer
    response = support.get(f"{BASE}/users/{raw}/recommendations?k=4&explain=true")
    assert response.status_code == 200
    _validate(spec, f"{BASE}/users/{{id}}/recommendations", response)
    code = cli.main(["recommend", "--db", str(trained_shop.db), "--models", str(trained_shop.models),
                     "--user", raw, "--k", "4", "--explain", "--json"])
    assert code == 0
    assert response.get_json() == json.loads(capsys.readouterr().out)
    for item in response.get_json()["items"]:
        explanation = item["explanation"]
        total = explanation["base_value"] + sum(c["contribution"] for c in explanation["contributions"])
        assert total == pytest.approx(item["score"], abs=1e-6)
        assert explanation["reasons"]


def test_default_k_is_ten(support, customer):
    body = support.get(f"{BASE}/users/{customer[1]}/recommendations").get_json()
    assert len(body["items"]) == openapi.DEFAULT_K


def test_the_profile_card(support, customer, trained_shop, spec):
    import duckdb

    raw, pseudonym = customer
    response = support.get(f"{BASE}/users/{raw}/profile")
    assert response.status_code == 200
    _validate(spec, f"{BASE}/users/{{id}}/profile", response)
    card = response.get_json()
    with duckdb.connect(str(trained_shop.db), read_only=True) as con:
        segment, events = con.execute("SELECT rfm_segment, n_events FROM user_profiles WHERE user_id = ?",
                                      [pseudonym]).fetchone()
    assert (card["user_id"], card["segment"], card["n_events"]) == (pseudonym, segment, events)


def test_a_csv_report_is_an_attachment_named_by_pseudonym(support, customer, spec):
    raw, pseudonym = customer
    response = support.get(f"{BASE}/users/{raw}/report?format=csv&k=3")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == f'attachment; filename="{pseudonym}.csv"'
    _validate(spec, f"{BASE}/users/{{id}}/report", response)
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert rows and {row["user_id"] for row in rows} == {pseudonym}
    assert {int(row["rank"]) for row in rows} == {1, 2, 3}


@pytest.mark.parametrize("fmt, media, magic", [("html", "text/html", b"<!DOCTYPE html"),
                                               ("pdf", "application/pdf", b"%PDF")])
def test_html_and_pdf_reports(support, customer, fmt, media, magic):
    response = support.get(f"{BASE}/users/{customer[1]}/report?format={fmt}&k=2")
    assert response.status_code == 200 and response.mimetype == media
    assert response.data[:len(magic)].upper() == magic.upper()
    assert response.headers["Content-Disposition"].endswith(f'.{fmt}"')


def test_html_is_the_default_report_format(support, customer):
    assert support.get(f"{BASE}/users/{customer[1]}/report?k=1").mimetype == "text/html"


def test_http_basic_auth_works_without_a_session(api_app, customer):
    name, password = ACCOUNTS[SUPPORT]
    client = api_app.server.test_client()
    response = client.get(f"{BASE}/users/{customer[1]}/profile", auth=(name, password))
    assert response.status_code == 200 and response.get_json()["user_id"] == customer[1]


def test_a_wrong_basic_password_is_refused_even_beside_a_session(api_app, customer):
    name, _ = ACCOUNTS[SUPPORT]
    client = api_app.server.test_client()
    assert sign_in(client, SUPPORT).status_code == 302
    response = client.get(f"{BASE}/users/{customer[1]}/profile", auth=(name, "not-the-password"))
    assert _error(response, 401)


def test_the_openapi_document_is_served_to_every_role(api_app, spec):
    client = api_app.server.test_client()
    sign_in(client, ANALYST)
    response = client.get(f"{BASE}/openapi.json")
    assert response.status_code == 200 and response.get_json() == openapi.document()
    assert response.get_json()["openapi"].startswith("3.")
    spec.validate()  # against the OpenAPI 3.0 meta-schema; raises when the document is not valid
    assert {result.ok().path for result in spec.get_all_operations()} == {
        "/health", f"{BASE}/openapi.json", f"{BASE}/search", f"{BASE}/users/{{id}}/recommendations",
        f"{BASE}/users/{{id}}/profile", f"{BASE}/users/{{id}}/report", f"{BASE}/events", f"{BASE}/items",
        f"{BASE}/impressions"}


def test_health_is_open_and_documented(api_app, spec):
    response = api_app.server.test_client().get("/health")
    assert response.get_json() == {"status": "ok"}
    _validate(spec, "/health", response)


# --------------------------------------------------------------------------- bad input: 400


@pytest.mark.parametrize("query", [
    "k=0", "k=101", "k=-1", "k=abc", "k=1.5", "k=", "k=%201", "k=+5", "k=1e2", "k=99999999999999999999",
    "k=1&k=2", "explain=yes", "explain=TRUE", "explain=1", "explain=", "kk=1", "user_id=c_1", "k=5&explain=true&x=1",
])
def test_bad_recommendation_parameters_are_400(support, customer, query):
    message = _error(support.get(f"{BASE}/users/{customer[1]}/recommendations?{query}"), 400)
    assert customer[0] not in message


@pytest.mark.parametrize("query", ["format=docx", "format=PDF", "format=", "format=html&format=pdf",
                                   "k=0&format=csv", "explain=true"])
def test_bad_report_parameters_are_400(support, customer, query):
    _error(support.get(f"{BASE}/users/{customer[1]}/report?{query}"), 400)


def test_the_profile_takes_no_parameters(support, customer):
    _error(support.get(f"{BASE}/users/{customer[1]}/profile?k=3"), 400)


@pytest.mark.parametrize("typed", [
    "x" * (openapi.MAX_ID_LENGTH + 1), "a b", "'%20OR%20'1'='1", "U000001';--", "%00", "a%0Ab", "U000001%0A",
    "%E2%80%8B",
    "-leading-dash", "%C3%A9l%C3%A8ve", "a%22b", "a%3Cscript%3E", "~",
])
def test_ids_outside_the_documented_shape_are_400_and_not_echoed(support, typed):
    response = support.get(f"{BASE}/users/{typed}/profile")
    message = _error(response, 400)
    assert "pseudonym" in message and typed not in message


def test_the_longest_well_formed_id_reaches_the_lookup(support):
    _error(support.get(f"{BASE}/users/{'9' * openapi.MAX_ID_LENGTH}/profile"), 404)


# --------------------------------------------------------------------------- not found: 404


@pytest.mark.parametrize("route", ["recommendations", "profile", "report"])
@pytest.mark.parametrize("typed", ["U999999", "c_00000000000000000000", "C_8F498471BCB5C0EE51EC", "17850"])
def test_unknown_customers_are_404(support, route, typed):
    message = _error(support.get(f"{BASE}/users/{typed}/{route}"), 404)
    assert "unknown customer" in message and typed not in message


def test_a_shop_id_in_another_case_is_another_customer(support, customer):
    raw, _ = customer
    assert raw.lower() != raw
    _error(support.get(f"{BASE}/users/{raw.lower()}/profile"), 404)


@pytest.mark.parametrize("path", [f"{BASE}/nope", "/api/v2/users/c_1/profile", "/api/", "/api",
                                  f"{BASE}/users/", f"{BASE}/users/c_1", f"{BASE}/users/c_1/profile/extra",
                                  f"{BASE}/users//profile", f"{BASE}/users/a%2Fb/profile"])
def test_unknown_api_paths_are_404_json(admin, path):
    _error(admin.get(path), 404)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_405_json(support, customer, method):
    response = support.open(f"{BASE}/users/{customer[1]}/profile", method=method)
    _error(response, 405)
    assert "GET" in response.headers["Allow"]


# --------------------------------------------------------------------------- 401 / 403


def test_without_sign_in_401_and_with_the_wrong_role_403(api_app, customer):
    client = api_app.server.test_client()
    _error(client.get(f"{BASE}/users/{customer[1]}/profile"), 401)
    sign_in(client, ANALYST)
    _error(client.get(f"{BASE}/users/{customer[1]}/profile"), 403)


# --------------------------------------------------------------------------- broken state: 503 / 500


def test_no_shop_and_no_model_are_503(client, service_settings):
    """The service app of tests/service/conftest.py has neither a shop nor a model."""
    sign_in(client, SUPPORT)
    message = _error(client.get(f"{BASE}/users/c_00000000000000000000/recommendations"), 503)
    assert "recommendations are unavailable" in message and "ingest" in message


def _bare_app(settings: Settings) -> flask.Flask:
    """The API blueprint alone on a Flask app (no guard): enough to see its answers to a broken model."""
    app = flask.Flask("bare")
    app.register_blueprint(api.blueprint(settings))
    return app


def test_a_missing_model_is_503(trained_shop, tmp_path):
    settings = Settings(db_path=trained_shop.db, models_dir=tmp_path / "no-models", secret="s")
    message = _error(_bare_app(settings).test_client().get(f"{BASE}/users/c_00000000000000000000/profile"), 503)
    assert "no trained model" in message and "cli.py train" in message


def test_a_corrupt_model_is_503(trained_shop, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(trained_shop.models, models)
    version = models / "versions" / (models / "CURRENT").read_text().strip()
    for name in ("hybrid.txt", "ranker.txt", "attention.pt"):
        (version / name).write_bytes(b"\x00garbage")
    settings = Settings(db_path=trained_shop.db, models_dir=models, secret="s")
    try:
        response = _bare_app(settings).test_client().get(f"{BASE}/users/c_00000000000000000000/profile")
        message = _error(response, 503)
        assert "corrupt" in message and "retrain" in message
    finally:
        forget_all()


def test_an_unexpected_failure_is_a_json_500_with_the_traceback_only_in_the_log(support, customer, monkeypatch,
                                                                                  caplog):
    import workflows.explaining

    def broken(*args, **kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr(workflows.explaining, "customer_card", broken)
    with caplog.at_level(logging.ERROR, logger="service.api"):
        message = _error(support.get(f"{BASE}/users/{customer[1]}/profile"), 500)
    assert "a bug" not in message and "server log" in message
    assert "ValueError: a bug" in caplog.text and customer[1] not in caplog.text


def test_a_broken_shop_during_the_work_is_503(support, customer, monkeypatch):
    import workflows.explaining

    def broken(*args, **kwargs):
        raise RecsightError("the shop database could not be read")

    monkeypatch.setattr(workflows.explaining, "explain_customer", broken)
    message = _error(support.get(f"{BASE}/users/{customer[1]}/report?format=csv"), 503)
    assert "could not be read" in message


def test_nothing_is_served_when_the_audit_log_cannot_be_written(support, customer, monkeypatch):
    def broken(*args, **kwargs):
        raise RecsightError("the audit log data/audit.duckdb cannot be opened: disk full")

    monkeypatch.setattr(audit, "record", broken)
    for route in ("recommendations?explain=true", "profile", "report?format=csv"):
        response = support.get(f"{BASE}/users/{customer[1]}/{route}")
        assert "disk full" in _error(response, 503)
        assert customer[1] not in response.get_data(as_text=True)
