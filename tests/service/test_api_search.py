"""``GET /api/v1/search`` through the real app and Flask's test client: the recommendations' shape,
bodies that match the OpenAPI document, the same roles and audit rules as recommendations, and a
clear 400 or a normal answer (never a 500) for any query text."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service import audit, openapi
from service.users import ANALYST
from tests.service.support import sign_in

BASE = openapi.API_BASE
SEARCH = f"{BASE}/search"


def _entries(api_settings: Any, action: str) -> list[audit.AuditEntry]:
    return audit.read_entries(api_settings.audit_db, action=action)


def test_an_anonymous_search_is_answered_explained_and_audited(support, spec, api_settings):
    before = len(_entries(api_settings, audit.SEARCH))
    response = support.get(f"{SEARCH}?q=set&k=5&explain=true")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    spec[SEARCH]["GET"].validate_response(response)
    body = response.get_json()
    assert body["user_id"] is None and body["personalised"] is False and len(body["items"]) == 5
    for item in body["items"]:
        explanation = item["explanation"]
        total = explanation["base_value"] + sum(c["contribution"] for c in explanation["contributions"])
        assert total == pytest.approx(item["score"], abs=1e-6)
    after = _entries(api_settings, audit.SEARCH)
    assert len(after) == before + 1 and after[0].customer is None


def test_a_search_as_a_customer_names_them_by_pseudonym_and_is_audited(support, spec, api_settings, trained_shop):
    raw = trained_shop.raw_ids[3]
    response = support.get(f"{SEARCH}?q=set&user={quote(raw)}&explain=true")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    spec[SEARCH]["GET"].validate_response(response)
    body = response.get_json()
    assert body["user_id"] == trained_shop.pseudonym(raw) and raw not in response.get_data(as_text=True)
    newest = _entries(api_settings, audit.EXPLANATION_VIEW)[0]
    assert newest.customer == body["user_id"] and "API search" in newest.detail


@pytest.mark.parametrize(("url", "status"), [
    (SEARCH, 400),                                   # no query
    (f"{SEARCH}?q=%20%20%09", 400),                  # blank
    (f"{SEARCH}?q={'a' * (openapi.MAX_QUERY_LENGTH + 1)}", 400),
    (f"{SEARCH}?q=tent&k=0", 400),
    (f"{SEARCH}?q=tent&colour=red", 400),            # an unknown parameter
    (f"{SEARCH}?q=tent&user=NO-SUCH-CUSTOMER", 404),
])
def test_bad_requests_get_a_clear_json_error(support, url, status):
    response = support.get(url)
    assert response.status_code == status and response.mimetype == "application/json"
    assert "Traceback" not in response.get_data(as_text=True)


def test_analysts_may_not_search_as_anyone(api_app):
    client = api_app.server.test_client()
    assert sign_in(client, ANALYST).status_code == 302
    assert client.get(f"{SEARCH}?q=tent").status_code == 403


_QUERIES = st.one_of(
    st.text(min_size=1, max_size=60),
    st.text(alphabet=st.characters(codec="utf-8", categories=["Lo", "So", "Cc", "Zs", "Po"]), min_size=1,
            max_size=30),
    st.sampled_from(["<b>tent</b>", "' OR 1=1 --", "电容器", "🙂🙂", "\x00\x01", "%s%s", "a" * 1000]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=_QUERIES)
def test_any_query_text_gets_a_400_or_an_answer_never_a_500(support, query):
    response = support.get(SEARCH, query_string={"q": query, "k": "3"})
    assert response.status_code in (200, 400), (query, response.get_data(as_text=True)[:200])
    assert response.mimetype == "application/json"
