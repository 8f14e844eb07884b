"""The API's contract: its limits and the OpenAPI 3 document served at ``/api/v1/openapi.json``.

The limits live here, beside the document that states them, and :mod:`service.api` enforces
exactly these values, so a client that follows the document is never refused and the fuzzing
test (schemathesis, tests/service/test_api_schemathesis.py) checks both against each other.

Customers are named in paths by a shop customer id (hashed on the server, never stored) or by
their pseudonym (``c_`` and 20 hex digits, as in reports and the audit log). Ids of another
shape than :data:`ID_PATTERN` allows can still be looked up by their pseudonym.
"""

from __future__ import annotations

import copy
from typing import Any

from analytics.customers import ID_PATTERN, MAX_ID_LENGTH
from analytics.impressions import MAX_ITEMS_PER_LIST, MAX_LABEL_LENGTH
from analytics.privacy import PSEUDONYM_LENGTH
from analytics.schema import EVENT_TYPES
from workflows.changes import MAX_SINCE_AGE, SINCE_MAX_LENGTH, SINCE_PATTERN
from workflows.intake import MAX_EVENTS_PER_BATCH, MAX_ITEMS_PER_BATCH
from workflows.performance import MAX_IMPRESSIONS_PER_BATCH

__all__ = [
    "API_BASE", "MIN_K", "MAX_K", "DEFAULT_K", "REPORT_FORMATS",
    "REPORT_MEDIA_TYPES", "DEFAULT_FORMAT", "MAX_PARAM_LENGTH", "MAX_SINCE_LENGTH", "MAX_QUERY_LENGTH",
    "QUERY_PATTERN", "MAX_BODY_BYTES", "document",
]

API_BASE = "/api/v1"
MIN_K, MAX_K, DEFAULT_K = 1, 100, 10
REPORT_MEDIA_TYPES: dict[str, str] = {"html": "text/html", "pdf": "application/pdf", "csv": "text/csv"}
REPORT_FORMATS: tuple[str, ...] = tuple(REPORT_MEDIA_TYPES)
DEFAULT_FORMAT = "html"
MAX_PARAM_LENGTH = 16  # any query value longer than this is not a k, a flag or a format
MAX_SINCE_LENGTH = SINCE_MAX_LENGTH  # ... except ``since``, a time with fractions and offset
MAX_QUERY_LENGTH = 1000  # ... and ``q``, the search text (the search itself reads its first 512 characters)
QUERY_PATTERN = r"\S"  # some character that is not white space (ECMA-262's \s, which the document's regex uses)
# The intake's body cap: 1,000 ordinary events are ~250 KB; this leaves room for long titles
# without letting one request hold megabytes of a server thread's memory.
MAX_BODY_BYTES = 4 * 1024 * 1024

_PSEUDONYM = f"^c_[0-9a-f]{{{PSEUDONYM_LENGTH}}}$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


_ERRORS: dict[str, Any] = {
    "400": _error("Bad input: an id, k, explain, since or format outside the documented limits, or an unknown "
                  "parameter."),
    "401": {"description": "Sign-in required (HTTP basic, or the dashboard's session cookie).",
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
            "content": {"application/json": {"schema": _ref("Error")}}},
    "403": _error("The signed-in role may not use this (only support and admin work with customers)."),
    "404": _error("No customer has this id or pseudonym."),
    "405": _error("Only GET is offered."),
    "429": {"description": "Too many requests: the signed-in login's customer lookups are over their limit, or "
                           "sign-in for this account or address is locked after failed attempts. Retry after the "
                           "seconds in Retry-After.",
            "headers": {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}}},
            "content": {"application/json": {"schema": _ref("Error")}}},
    "503": _error("No trained model or shop database (or it cannot be read), or the audit log cannot be "
                  "written: nothing is served unrecorded."),
    "500": _error("A bug; the server log has the details."),
}

_ID_PARAMETER = {
    "name": "id", "in": "path", "required": True,
    "description": "A shop customer id (hashed on the server with the shop's secret) or a pseudonym (c_ + 20 hex).",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH, "pattern": ID_PATTERN},
}
_K_PARAMETER = {
    "name": "k", "in": "query", "required": False, "description": "How many items.",
    "schema": {"type": "integer", "minimum": MIN_K, "maximum": MAX_K, "default": DEFAULT_K},
}

_SEARCH_PARAMETERS = [
    {"name": "q", "in": "query", "required": True,
     "description": "What to search for, in any language (a Chinese query finds English titles by meaning). "
                    "White space alone is refused; text the search finds nothing to read in (control "
                    "characters) gives no results; a longer text than the search reads is cut (`truncated`).",
     "schema": {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_LENGTH, "pattern": QUERY_PATTERN}},
    {"name": "user", "in": "query", "required": False,
     "description": "Search as this customer (shop id or pseudonym): personalised, and audited as a customer "
                    "lookup. Without it the search is anonymous (the query alone).",
     "schema": {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH, "pattern": ID_PATTERN}},
    _K_PARAMETER,
    {"name": "explain", "in": "query", "required": False,
     "description": "Add each result's explanation (SHAP by side, matched words, reasons).",
     "schema": {"type": "boolean", "default": False}},
]

_SINCE_PARAMETER = {
    "name": "since", "in": "query", "required": False,
    "description": (
        "Add `changes`: what entered, left or moved in the top k since this time (ISO 8601 with its offset, "
        f"e.g. 2025-05-01T12:00:00Z; within the last {MAX_SINCE_AGE.days} days), and the event behind each move. "
        "The list as it was is ranked with the customer's events before `since` (event times, as the shop sent "
        "them); both lists are explained, and each move is told from the difference of the two explanations: "
        "the SHAP change per feature group, and the new event with the largest Integrated Gradients attribution "
        "change. A customer without events since then gets empty `changes` at no extra cost."),
    "schema": {"type": "string", "format": "date-time", "maxLength": MAX_SINCE_LENGTH, "pattern": SINCE_PATTERN},
}

_NUMBER = {"type": "number"}
_NULLABLE_NUMBER = {"type": "number", "nullable": True}
_NULLABLE_RANK = {"type": "integer", "minimum": 1, "nullable": True}
_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object", "required": ["status", "message"],
        "properties": {"status": {"type": "integer"}, "message": {"type": "string"}},
    },
    "Health": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string", "enum": ["ok"]}}},
    "Contribution": {
        "type": "object", "required": ["feature", "label", "value", "contribution"],
        "description": "One ranker feature's TreeSHAP contribution (raw-score units) to the item's score.",
        "properties": {"feature": {"type": "string"}, "label": {"type": "string"},
                       "value": {"type": "number", "nullable": True}, "contribution": _NUMBER},
    },
    "HistoryEvidence": {
        "type": "object", "required": ["item_id", "event_type", "ts", "attribution", "attention"],
        "description": "One past event and how much it drove the attention network's score.",
        "properties": {"item_id": {"type": "string"}, "event_type": {"type": "string"},
                       "ts": {"type": "string"}, "attribution": _NUMBER, "attention": _NUMBER},
    },
    "Explanation": {
        "type": "object", "required": ["base_value", "contributions", "history", "convergence_delta", "reasons"],
        "description": "base_value plus the sum of the contributions equals the item's score (the model's part; "
                       "an item a merchandising rule added has none: null base_value, no contributions).",
        "properties": {
            "base_value": _NULLABLE_NUMBER,
            "contributions": {"type": "array", "items": _ref("Contribution")},
            "history": {"type": "array", "items": _ref("HistoryEvidence")},
            "convergence_delta": {"type": "number", "nullable": True},
            "reasons": {"type": "array", "items": {"type": "string"}},
            "rules": {"type": "array", "items": {"type": "string"}, "description":
                      "What merchandising rules did to the item, apart from the model's reasons."},
            "added_by_rule": {"type": "boolean"},
        },
    },
    "RuleEffect": {
        "type": "object", "required": ["rule_id", "rule", "author", "changed", "kind", "from_rank", "to_rank"],
        "description": "One merchandising rule's effect on the item, applied after the ranker.",
        "properties": {"rule_id": {"type": "string"}, "rule": {"type": "string"}, "author": {"type": "string"},
                       "changed": {"type": "string", "description": "When the rule was last written, UTC."},
                       "kind": {"type": "string", "enum": ["pin", "boost", "bury", "exclude"]},
                       "from_rank": {**_NULLABLE_RANK, "description": "The model's rank (null: not in its list)."},
                       "to_rank": _NULLABLE_RANK},
    },
    "RecommendedItem": {
        "type": "object", "required": ["rank", "item_id", "title", "score"],
        "properties": {"rank": {"type": "integer", "minimum": 1}, "item_id": {"type": "string"},
                       "title": {"type": "string"},
                       "score": {**_NULLABLE_NUMBER, "description": "The ranker's raw score (no unit; for analysts); "
                                 "null for an item a merchandising rule added."},
                       "match_strength": {"type": "integer", "minimum": 0, "maximum": 100, "description":
                                          "How the score compares with every recommendation this model serves: "
                                          "80 is a stronger match than 80 % of them (what an agent reads out)."},
                       "rules": {"type": "array", "items": _ref("RuleEffect")},
                       "rule_note": {"type": "string", "description": "The rules' effect in words."},
                       "added_by_rule": {"type": "boolean"},
                       "explanation": _ref("Explanation")},
    },
    "Recommendations": {
        "type": "object", "required": ["user_id", "cold_start", "items"],
        "description": "The same object as `python cli.py recommend --json` (with --explain: `explanation` per item).",
        "properties": {"user_id": {"type": "string", "pattern": _PSEUDONYM}, "cold_start": {"type": "boolean"},
                       "items": {"type": "array", "maxItems": MAX_K, "items": _ref("RecommendedItem")},
                       "changes": _ref("Changes"),
                       "experiment": {"type": "string", "nullable": True,
                                      "description": "The running experiment serving this customer (null: none)."},
                       "variant": {"type": "string", "nullable": True,
                                   "description": "The customer's variant of it, fixed by their pseudonym."},
                       "model_version": {"type": "string", "description": "The model version that ranked the list."},
                       "rules_version": {"type": "string", "nullable": True,
                                         "description": "The variant's rule-set version (null: the current rules)."}},
    },
    "SearchExplanation": {
        "type": "object", "required": ["reasons", "personalised", "base_value", "sides", "matched", "contributions"],
        "description": "base_value plus the sum of the contributions equals the result's score.",
        "properties": {
            "reasons": {"type": "array", "items": {"type": "string"}},
            "personalised": {"type": "boolean"}, "base_value": _NUMBER,
            "sides": {"type": "object", "additionalProperties": _NUMBER,
                      "description": "Contributions summed by side: 'matches the query', 'fits this customer'."},
            "matched": {"type": "array", "items": {
                "type": "object", "required": ["field", "words", "query_words"],
                "properties": {"field": {"type": "string"}, "words": {"type": "array", "items": {"type": "string"}},
                               "query_words": {"type": "array", "items": {"type": "string"}}}}},
            "similarity": _NUMBER, "semantic_rank": {"type": "integer", "minimum": 1},
            "contributions": {"type": "array", "items": {
                "type": "object", "required": ["feature", "label", "side", "contribution"],
                "properties": {"feature": {"type": "string"}, "label": {"type": "string"},
                               "side": {"type": "string"}, "value": {"type": "number", "nullable": True},
                               "contribution": _NUMBER}}},
        },
    },
    "SearchResults": {
        "type": "object", "required": ["query", "truncated", "user_id", "personalised", "items"],
        "description": "The same object as `python cli.py search --json`.",
        "properties": {
            "query": {"type": "string"}, "truncated": {"type": "boolean"},
            "user_id": {"type": "string", "nullable": True, "pattern": _PSEUDONYM},
            "personalised": {"type": "boolean"}, "model_version": {"type": "string"},
            "items": {"type": "array", "maxItems": MAX_K, "items": {
                "type": "object", "required": ["rank", "item_id", "title", "score"],
                "properties": {"rank": {"type": "integer", "minimum": 1}, "item_id": {"type": "string"},
                               "title": {"type": "string"}, "score": _NUMBER,
                               "explanation": _ref("SearchExplanation")}}},
        },
    },
    "ChangeEvent": {
        "type": "object", "required": ["item_id", "title", "event_type", "ts", "ago"],
        "description": "One of the customer's events; in a move's `events`, with its explanation changes.",
        "properties": {
            "item_id": {"type": "string"}, "title": {"type": "string"}, "event_type": {"type": "string"},
            "ts": {"type": "string", "description": "Event time, UTC."},
            "ago": {"type": "string", "description": "The time in words, from the answer's time: '40 seconds ago'."},
            "new": {"type": "boolean", "description": "At or after `since`."},
            "share_change": {**_NUMBER, "description": "Change of its part of the attention feature's SHAP value."},
            "attribution_change": {**_NUMBER, "description": "Change of its Integrated Gradients attribution."},
        },
    },
    "Move": {
        "type": "object",
        "required": ["kind", "item_id", "title", "rank_before", "rank_now", "score_before", "score_now",
                     "score_change", "sentence", "cause", "drivers", "events"],
        "description": "One item that entered, left or moved. Ranks are in the whole candidate ranking (null: "
                       "not a candidate then). score_change = sum of drivers' changes + sum of events' share changes.",
        "properties": {
            "kind": {"type": "string", "enum": ["entered", "left", "moved"]},
            "item_id": {"type": "string"}, "title": {"type": "string"},
            "rank_before": _NULLABLE_RANK, "rank_now": _NULLABLE_RANK,
            "score_before": _NULLABLE_NUMBER, "score_now": _NULLABLE_NUMBER, "score_change": _NULLABLE_NUMBER,
            "sentence": {"type": "string", "description": "The move in words, for a support agent."},
            "cause": {"nullable": True, "allOf": [_ref("ChangeEvent")]},
            "drivers": {"type": "array", "items": {
                "type": "object", "required": ["group", "label", "change"],
                "properties": {"group": {"type": "string"}, "label": {"type": "string"}, "change": _NUMBER}}},
            "events": {"type": "array", "items": _ref("ChangeEvent")},
        },
    },
    "Changes": {
        "type": "object", "required": ["since", "k", "new_events", "entered", "left", "moved"],
        "properties": {
            "since": {"type": "string"}, "k": {"type": "integer", "minimum": MIN_K, "maximum": MAX_K},
            "new_events": {"type": "array", "items": _ref("ChangeEvent")},
            "entered": {"type": "array", "items": _ref("Move")},
            "left": {"type": "array", "items": _ref("Move")},
            "moved": {"type": "array", "items": _ref("Move")},
        },
    },
    "Share": {"type": "object", "required": ["share"], "properties": {"share": _NUMBER}},
    "IntakeResult": {
        "type": "object", "required": ["accepted", "duplicates", "rejected"],
        "description": "What the batch did, once it is on disk: new rows stored, events already stored "
                       "(dropped: re-sending a batch adds nothing), refusals with a reason each.",
        "properties": {
            "accepted": {"type": "integer", "minimum": 0}, "duplicates": {"type": "integer", "minimum": 0},
            "rejected": {"type": "array", "items": {
                "type": "object", "required": ["index", "event_id", "reason"],
                "properties": {"index": {"type": "integer", "minimum": 0, "description": "Position in the batch."},
                               "event_id": {"type": "string", "nullable": True},
                               "item_id": {"type": "string", "nullable": True},
                               "reason": {"type": "string"}}}},
        },
    },
    "PriceBand": {
        "type": "object", "nullable": True, "required": ["basis", "p25", "median", "p75"],
        "properties": {"basis": {"type": "string", "enum": ["bought", "viewed"]},
                       "p25": _NUMBER, "median": _NUMBER, "p75": _NUMBER},
    },
    "Profile": {
        "type": "object",
        "required": ["user_id", "segment", "n_events", "n_purchases", "favourite_categories", "favourite_brands",
                     "price_band", "time_based"],
        "description": "The customer's profile card, as reports show it. Order-only shops have no recency.",
        "properties": {
            "user_id": {"type": "string", "pattern": _PSEUDONYM},
            "segment": {"type": "string", "nullable": True},
            "n_events": {"type": "integer", "nullable": True},
            "n_purchases": {"type": "integer", "nullable": True},
            "recency_days": {"type": "number", "nullable": True},
            "frequency": {"type": "integer", "nullable": True},
            "monetary": {"type": "number", "nullable": True},
            "favourite_categories": {"type": "array", "items": _ref("Share")},
            "favourite_brands": {"type": "array", "items": _ref("Share")},
            "price_band": _ref("PriceBand"),
            "time_based": {"type": "boolean"},
            "last_active": {"type": "string", "nullable": True},
        },
    },
}


_INTAKE_ERRORS: dict[str, Any] = {
    "400": _error("The body is not JSON, or not a JSON array, or the route was given query parameters."),
    "401": _ERRORS["401"],
    "403": _error("Only the intake role (the shop's backend) may post; it may use nothing else."),
    "405": _error("Only POST is offered."),
    "413": _error(f"The body is over {MAX_BODY_BYTES:,} bytes (refused by its Content-Length, unread), "
                  "or the batch has more elements than one request takes."),
    "415": _error("The body is not application/json."),
    "429": {**_ERRORS["429"], "description": "The intake queue is full, or the store's writer is busy, or sign-in "
                                             "is locked after failed attempts: retry after Retry-After seconds."},
    "503": _error("The store cannot be written (a full disk, no secret configured)."),
    "500": _ERRORS["500"],
}


def _intake_operation(summary: str, description: str, limit: int) -> dict[str, Any]:
    body = {"type": "array", "maxItems": limit, "items": {},
            "description": "Any JSON values: each element that is not a valid object of the data contract "
                           "comes back in `rejected` with its reason (and goes to the store's rejects)."}
    return {"post": {
        "summary": summary, "description": description, "tags": ["intake"],
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {"200": {"description": "The batch is durable (fsynced): accepted, duplicates, rejected.",
                              "content": {"application/json": {"schema": _ref("IntakeResult")}}},
                      **_INTAKE_ERRORS},
    }}


def _customer_operation(summary: str, description: str, parameters: list[dict[str, Any]],
                        ok: dict[str, Any], more: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"get": {"summary": summary, "description": description, "tags": ["customers"],
                    "parameters": [_ID_PARAMETER, *parameters], "responses": {"200": ok, **_ERRORS, **(more or {})}}}


_DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "Recsight API",
        "version": "1.0.0",
        "description": (
            "Explained recommendations for support tools, one customer at a time. Customers are named by "
            "shop id or pseudonym; responses carry pseudonyms only. Every customer lookup, explanation and "
            "report export is written to the audit log with the signed-in user. Roles: support and admin; "
            "the intake role (the shop's backend) posts events, catalogue rows and shown lists and may read nothing."
        ),
    },
    "servers": [{"url": "/"}],
    "security": [{"basicAuth": []}, {"sessionCookie": []}],
    "paths": {
        "/health": {"get": {
            "summary": "Liveness", "description": "Open without sign-in.", "security": [], "tags": ["service"],
            "responses": {"200": {"description": "The server is up.",
                                  "content": {"application/json": {"schema": _ref("Health")}}}},
        }},
        f"{API_BASE}/openapi.json": {"get": {
            "summary": "This document", "tags": ["service"],
            "responses": {"200": {"description": "The OpenAPI document.",
                                  "content": {"application/json": {"schema": {"type": "object"}}}},
                          "401": _ERRORS["401"], "403": _ERRORS["403"], "429": _ERRORS["429"]},
        }},
        f"{API_BASE}/users/{{id}}/recommendations": _customer_operation(
            "Top-k recommendations, optionally explained",
            "Audited as a customer lookup, or as an explanation view with explain=true or since.",
            [_K_PARAMETER, {"name": "explain", "in": "query", "required": False,
                            "description": "Add each item's explanation (SHAP contributions, history, reasons).",
                            "schema": {"type": "boolean", "default": False}},
             _SINCE_PARAMETER],
            {"description": "The customer's list (with `since`: and its `changes`).",
             "content": {"application/json": {"schema": _ref("Recommendations")}}},
            {"409": _error(f"`since` is a real time but in the future, or more than {MAX_SINCE_AGE.days} days "
                           "ago: the server answers for changes within that window only.")},
        ),
        f"{API_BASE}/search": {"get": {
            "summary": "Search the catalogue, anonymously or as a customer, optionally explained",
            "description": "Keyword (BM25 per field) and multilingual semantic retrieval, ranked by LambdaRank over "
                           "query features (and the customer's, with `user`). Audited like recommendations.",
            "tags": ["search"], "parameters": _SEARCH_PARAMETERS,
            "responses": {"200": {"description": "The results, best first.",
                                  "content": {"application/json": {"schema": _ref("SearchResults")}}},
                          **_ERRORS}}},
        f"{API_BASE}/users/{{id}}/profile": _customer_operation(
            "The customer's profile card", "Audited as a customer lookup.", [],
            {"description": "The profile card.", "content": {"application/json": {"schema": _ref("Profile")}}},
        ),
        f"{API_BASE}/users/{{id}}/report": _customer_operation(
            "The customer's explanation report as a file",
            "Audited as a report export. Charts are drawn as HTML bars (the same numbers as the dashboard).",
            [_K_PARAMETER, {"name": "format", "in": "query", "required": False,
                            "schema": {"type": "string", "enum": list(REPORT_FORMATS), "default": DEFAULT_FORMAT}}],
            {"description": "The report, as an attachment named <pseudonym>.<format>.",
             "headers": {"Content-Disposition": {"required": True, "schema": {"type": "string"}}},
             "content": {media: {"schema": {"type": "string", "format": "binary"}}
                         for media in REPORT_MEDIA_TYPES.values()}},
        ),
        f"{API_BASE}/events": _intake_operation(
            "Add a batch of events (the intake role)",
            f"Up to {MAX_EVENTS_PER_BATCH:,} events of the data contract: event_id (the client's id, the key that "
            "makes re-sending harmless), user_id (the shop's customer id, pseudonymised on arrival), item_id, "
            f"event_type ({', '.join(EVENT_TYPES)}), ts (ISO 8601, UTC), and optionally session_id, quantity, "
            "price, rating. Validated as ingest validates rows.", MAX_EVENTS_PER_BATCH),
        f"{API_BASE}/items": _intake_operation(
            "Add or change catalogue rows (the intake role)",
            f"Up to {MAX_ITEMS_PER_BATCH:,} rows: item_id, title, category, and optionally brand, price. A "
            "non-empty value replaces the stored one; an absent one keeps it.", MAX_ITEMS_PER_BATCH),
        f"{API_BASE}/impressions": _intake_operation(
            "Add a batch of shown lists (the intake role)",
            f"Up to {MAX_IMPRESSIONS_PER_BATCH:,} impressions, one per list a customer was shown: event_id (the "
            "client's id, the key that makes re-sending harmless), user_id (the shop's customer id, pseudonymised "
            "on arrival as events are), ts (ISO 8601, UTC), list (its name: home, product, search...), items (the "
            f"item ids in the order shown, 1 to {MAX_ITEMS_PER_LIST}; position = index + 1), model_version, "
            f"experiment and variant (labels of at most {MAX_LABEL_LENGTH} characters; experiment and variant both "
            "null or both set). Clicks, carts and purchases of a shown item by that customer within 24 hours are "
            "attributed to the latest impression of it (the Performance page). A refused impression comes back in "
            "`rejected` and is not kept (no rejects table for impressions).", MAX_IMPRESSIONS_PER_BATCH),
    },
    "components": {
        "securitySchemes": {
            "basicAuth": {"type": "http", "scheme": "basic",
                          "description": "A user of the users file (python cli.py users add NAME --role support)."},
            "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "recsight_session",
                              "description": "The dashboard's sign-in session."},
        },
        "schemas": _SCHEMAS,
    },
}


def document() -> dict[str, Any]:
    """The OpenAPI document (a fresh copy: callers may change theirs)."""
    return copy.deepcopy(_DOCUMENT)
