"""Merchandising rules where lists are served to people: the one hook every interface calls.

The shop's rule set (:mod:`analytics.rule_set`, versions in ``<db>.rules/``: :mod:`analytics.rules_store`)
is applied after the ranker (:mod:`models.rules`) wherever a list reaches a person: the API's
recommendations (:func:`workflows.explaining.recommendation_payload`, ``?since=`` too), the customer
page, its live refresh and its reports (:func:`workflows.explaining.explain_customer`), and search
(:func:`search_excluding`: exclusions only; a pin or boost has no place in the answer to a query).
They all call :func:`merchandised` (or its :func:`applied`), so an excluded item is in none of them
while its rule holds.

* **Which rule set** (:func:`rules_for`): the current version, read once and kept while ``CURRENT``
  is unchanged (one ``stat`` per request). A customer in a running experiment gets the version
  their variant names (the assignment that picks the variant's model), plus the current set's
  exclusions: a recalled item is shown to nobody, experiment or not. A current version that stops
  reading keeps the last good one in force (logged as an error).
* **What it costs**: nothing when no rule holds now (the model's list as before); with rules, the
  customer's long list (the precomputed 50, no ranking) and one small catalogue query; the scope's
  country and segment are read only when a rule in force has a scope.
* **Explanations**: the model's items are explained as before, by the model (SHAP, Integrated
  Gradients, reasons: the faithfulness checks never see a rule); each item a rule touched gets its
  rule line beside them (:class:`RuledExplanation`) and, as "what would change it", the rule.
  An item a pin added has no model explanation: it says so.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from analytics import experiments_store
from analytics import schema as s
from analytics.profile_card import profile_card
from analytics.rule_set import EXCLUDE, ITEM, PIN, Rule, RuleSet
from analytics.rules_store import current_stamp, load_rules, rules_folder, version_path
from errors import RecsightError
from explain.explainer import explain_items
from explain.reasons import CustomerData
from explain.types import ItemExplanation
from models.assignment import assign
from models.precompute import K_PRECOMPUTED
from models.recommendation import Recommendation, RecommendedItem
from models.rules import Applied, Customer, ItemInfo, RuledItem, RuleEffect, applicable, apply_rules, describe, excluded
from models.rules import short_date as _short_date
from models.search_ranker import SearchHit, SearchResult
from models.serving import Recommender
from workflows.variants import rules_version_number

__all__ = ["LONG_LIST", "RuledExplanation", "shop_path", "rule_set_for", "current_rules", "rules_for", "applied",
           "merchandised", "list_payload", "explain_merchandised", "explanation_payload", "search_excluding",
           "without_excluded", "rules_stamp", "require_ranked", "customer_of", "catalogue_of", "utc_now"]

log = logging.getLogger(__name__)

LONG_LIST = K_PRECOMPUTED  # the model's list the rules run over before the cut to k: the precomputed length

_lock = threading.Lock()
_current: dict[Path, tuple[tuple[int, int, int] | None, RuleSet]] = {}
_named: dict[tuple[Path, int], tuple[tuple[int, int, int] | None, RuleSet]] = {}
_items: weakref.WeakKeyDictionary[Recommender, tuple[int, dict[str, ItemInfo | None]]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class RuledExplanation(ItemExplanation):
    """An item's explanation with what the rules did to it: ``rules`` (sentences, separate from
    the model's ``reasons``) and ``added`` (a pin put it in; the model has no explanation of it)."""

    rules: tuple[str, ...] = ()
    added: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["rules"] = list(self.rules)
        if self.added:
            data["added_by_rule"] = True
        return data


# --------------------------------------------------------------------------- which rules


def shop_path(recommender: Recommender) -> Path:
    """The shop file the recommender serves (the rules live beside it)."""
    if recommender.db_path is None:
        raise RecsightError("this recommender was not loaded from a shop file: its rules cannot be read")
    return recommender.db_path


def rule_set_for(db_path: Path | str, version: int | None = None) -> RuleSet:
    """The shop's rule set: the current version (kept while its pointer is unchanged), or the
    named ``version`` (immutable, kept once read): what an experiment's variant serves."""
    folder = rules_folder(db_path).resolve()
    if version is not None:  # immutable once saved; the file's stamp only guards a folder made anew
        try:
            st = version_path(folder, version).stat()
        except OSError:
            st = None
        stamp = None if st is None else (st.st_ino, st.st_mtime_ns, st.st_size)
        with _lock:
            kept = _named.get((folder, version))
        if kept is not None and kept[0] == stamp:
            return kept[1]
        rules = load_rules(folder, version)
        with _lock:
            _named[(folder, version)] = (stamp, rules)
        return rules
    stamp = current_stamp(folder)
    with _lock:
        cached = _current.get(folder)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        rules = load_rules(folder)
    except RecsightError as exc:
        if cached is None:
            raise
        log.error("the current rule set cannot be read (%s): v%s stays in force", exc, cached[1].version)
        return cached[1]
    with _lock:
        _current[folder] = (stamp, rules)
    if rules.version:
        log.info("rule set v%s in force (%d rules)", rules.version, len(rules))
    return rules


def current_rules(recommender: Recommender) -> RuleSet:
    """The rule set in force for the shop the recommender serves."""
    return rule_set_for(shop_path(recommender))


def rules_for(recommender: Recommender, user_id: str | None, now: datetime | None = None) -> RuleSet:
    """The rule set that serves this customer at ``now``: the rule-set version their variant names
    when an experiment runs (:func:`models.assignment.assign`, the same assignment that picks the
    variant's model: :mod:`workflows.variants`), plus the current set's exclusions; else the
    current set. Anonymous: the current set."""
    db_path = shop_path(recommender)
    current = rule_set_for(db_path)
    experiment = experiments_store.running(db_path, now) if user_id is not None else None
    if experiment is not None:
        named = rules_version_number(assign(experiment, user_id).rules_version)
        if named is not None and named != current.version:
            return _with_exclusions(rule_set_for(db_path, named), current)
    return current


def _with_exclusions(named: RuleSet, current: RuleSet) -> RuleSet:
    """A variant's rule set with the current set's exclusions added: what is out of stock or
    recalled now is shown to nobody, whichever rules an experiment compares."""
    ids = {rule.rule_id for rule in named.rules}
    extra = tuple(rule for rule in current.rules if rule.kind == EXCLUDE and rule.rule_id not in ids)
    return dataclasses.replace(named, rules=named.rules + extra) if extra else named


def rules_stamp(recommender: Recommender, user_id: str | None,
                now: datetime | None = None) -> tuple[int | None, tuple[str, ...]]:
    """What identifies the rules a customer's list is served under at ``now``: the version and the
    rules in force (a window opening or closing changes the lists as a new version does): for caches."""
    now = now or utc_now()
    rules = rules_for(recommender, user_id, now)
    return rules.version, tuple(rule.rule_id for rule in rules.active(now))


# --------------------------------------------------------------------------- applying


def applied(recommender: Recommender, user_id: str, k: int, *, ranked: Recommendation | None = None,
            rules: RuleSet | None = None, now: datetime | None = None) -> Applied:
    """The customer's top ``k`` after the rules (``rules``: :func:`rules_for` the customer when None) at ``now``.

    ``ranked``: the model's list when the caller already ranked it (the longer, the better: the
    rules pull items from below the cut); else the long list (:data:`LONG_LIST`) is read.
    """
    now = now or utc_now()
    rules = rules_for(recommender, user_id, now) if rules is None else rules
    in_force = rules.active(now)
    if not in_force:
        return Applied(ranked.head(k) if ranked is not None else recommender.recommend(user_id, k))
    customer = customer_of(recommender, user_id, in_force)
    holding = applicable(in_force, customer, now)
    if not holding:
        return Applied(ranked.head(k) if ranked is not None else recommender.recommend(user_id, k))
    if ranked is None:
        ranked = recommender.recommend(user_id, max(k, LONG_LIST))
    wanted = [item.item_id for item in ranked.items] + [r.target.strip() for r in holding if r.kind == PIN]
    catalogue = catalogue_of(recommender, wanted)
    result = apply_rules(ranked, holding, customer, now, k, catalogue)
    if result.conflicts:
        log.info("rules for %s: %s", user_id, "; ".join(result.conflicts))
    return result


def merchandised(recommender: Recommender, user_id: str, k: int, *, ranked: Recommendation | None = None,
                 rules: RuleSet | None = None, now: datetime | None = None) -> Recommendation:
    """The list a person is shown: :func:`applied`'s recommendation (the hook every interface calls)."""
    return applied(recommender, user_id, k, ranked=ranked, rules=rules, now=now).recommendation


def without_excluded(recommender: Recommender, result: Recommendation, *, rules: RuleSet | None = None,
                     now: datetime | None = None) -> Recommendation:
    """``result`` without the items an exclusion in force removes for its customer, renumbered
    (lists the rules otherwise leave to the model, such as the what-if's)."""
    now = now or utc_now()
    rules = rules_for(recommender, result.user_id, now) if rules is None else rules
    excludes = [rule for rule in rules.active(now) if rule.kind == EXCLUDE]
    if not excludes or not result.items:
        return result
    holding = applicable(excludes, customer_of(recommender, result.user_id, excludes), now)
    ids = [item.item_id for item in result.items]
    gone = excluded(ids, holding, catalogue_of(recommender, ids)) if holding else set()
    if not gone:
        return result
    rows = [n for n, item in enumerate(ids) if item not in gone]
    items = [dataclasses.replace(result.items[n], rank=rank) for rank, n in enumerate(rows, start=1)]
    return Recommendation(result.user_id, result.cold_start, items, result.features.iloc[rows].reset_index(drop=True))


def search_excluding(recommender: Recommender, result: SearchResult, user_id: str | None, k: int, *,
                     rules: RuleSet | None = None, now: datetime | None = None) -> SearchResult:
    """The search ``result`` without the items an exclusion in force removes for the searcher
    (anonymous: the rules for all customers), the next candidates moving up into the top ``k``."""
    now = now or utc_now()
    rules = rules_for(recommender, user_id, now) if rules is None else rules
    excludes = [rule for rule in rules.active(now) if rule.kind == EXCLUDE]
    if not excludes or result.frame.empty:
        return result
    customer = customer_of(recommender, user_id, excludes) if user_id is not None else Customer(None)
    holding = applicable(excludes, customer, now)
    if not holding:
        return result
    ids = result.frame[s.ITEM_ID].astype(str).tolist()
    by_item = all(rule.target_type == ITEM for rule in holding)
    gone = excluded(ids, holding, {} if by_item else catalogue_of(recommender, ids))
    if not gone:
        return result
    frame = result.frame[~result.frame[s.ITEM_ID].isin(gone)].reset_index(drop=True)
    candidates = {c.item_id: c for c in result.retrieval.candidates}
    hits = [SearchHit(rank, item, float(score), candidates[item]) for rank, (item, score) in
            enumerate(zip(frame[s.ITEM_ID].head(k), frame["score"].head(k)), start=1)]
    return dataclasses.replace(result, hits=hits, frame=frame)


# --------------------------------------------------------------------------- what people read


def list_payload(result: Recommendation) -> dict[str, Any]:
    """``result.to_dict()`` with each ruled item's ``rules`` (the effects) and ``rule_note`` (in
    words); an item a pin added is ``added_by_rule`` and has no score (null)."""
    payload = result.to_dict()
    now = utc_now()
    for out, item in zip(payload["items"], result.items):
        if isinstance(item, RuledItem) and item.rules:
            out["rules"] = [effect.to_dict() for effect in item.rules]
            out["rule_note"] = _capital(describe(item.rules, now))
            if item.added:
                out["added_by_rule"] = True
                out["score"] = None
    return payload


def explain_merchandised(recommender: Recommender, result: Recommendation, *,
                         customer: CustomerData | None = None) -> list[ItemExplanation]:
    """One explanation per item of ``result`` (in its order): the model's, for the items the model
    ranked (at the rank shown), with the rule lines of the items the rules touched; a rule-only
    explanation for an item a pin added."""
    now = utc_now()
    ranked = [n for n, item in enumerate(result.items) if not (isinstance(item, RuledItem) and item.added)]
    model: dict[int, ItemExplanation] = {}
    if ranked:
        rows = result.features.iloc[ranked].reset_index(drop=True).infer_objects()
        sub = Recommendation(result.user_id, result.cold_start, [result.items[n] for n in ranked], rows)
        model = dict(zip(ranked, explain_items(recommender, sub, customer=customer)))
    out: list[ItemExplanation] = []
    for n, item in enumerate(result.items):
        effects = item.rules if isinstance(item, RuledItem) else ()
        if n in model and not effects:
            out.append(model[n])
        elif n in model:
            fields = {**_fields(model[n]), "counterfactual": _what_would_change(effects, now)}
            out.append(RuledExplanation(**fields, rules=(_capital(describe(effects, now)),)))
        else:
            out.append(_added(result.user_id, item, effects, now))
    return out


def explanation_payload(recommender: Recommender, result: Recommendation, payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` (:func:`list_payload`) with an ``"explanation"`` per item (strict JSON numbers)."""
    explained = explain_merchandised(recommender, result)
    out = dict(payload)
    out["items"] = [dict(item, explanation=_json_safe(e.to_dict())) for item, e in zip(payload["items"], explained)]
    return out


def require_ranked(*items: ItemExplanation) -> None:
    """A comparison is of the model's scores: refused for an item a rule added (it has none)."""
    for item in items:
        if isinstance(item, RuledExplanation) and item.added:
            raise RecsightError(f"“{item.title}” was added by a merchandising rule: the model did not rank it, "
                                "so there are no scores to compare")


# --------------------------------------------------------------------------- reading the shop


def customer_of(recommender: Recommender, user_id: str | None, rules: Sequence[Rule]) -> Customer:
    """What the scopes of ``rules`` read of the customer: their country (``users``) and RFM segment
    (their profile, live where they have live events); not read when no rule has a scope."""
    if user_id is None or all(rule.scope.everyone for rule in rules):
        return Customer(user_id)
    with recommender.connection() as con:
        try:
            row = con.execute(f"SELECT {s.COUNTRY} FROM {s.USERS} WHERE {s.USER_ID} = ? LIMIT 1", [user_id]).fetchone()
        except duckdb.Error:  # a shop without a users table (or without countries)
            row = None
        segment = profile_card(con, user_id).segment if any(rule.scope.segments for rule in rules) else None
    return Customer(user_id, row[0] if row else None, segment)


def catalogue_of(recommender: Recommender, item_ids: Sequence[str]) -> dict[str, ItemInfo]:
    """Title, category and brand of the catalogue's items among ``item_ids`` (live rows included).

    Kept per recommender until the live segment moves (a batch may bring catalogue rows): the
    precomputed lists are served without the serving lock, and a rule in force should not make
    every request queue behind a live ranking for the same few items' attributes."""
    wanted = list(dict.fromkeys(item_ids))
    if not wanted:
        return {}
    seq = recommender.live.last_seq if recommender.live is not None else -1
    with _lock:
        kept = _items.get(recommender)
        if kept is None or kept[0] != seq:
            kept = _items[recommender] = (seq, {})
    known = kept[1]
    missing = [item for item in wanted if item not in known]
    if missing:
        with recommender.connection() as con:
            rows = con.execute(
                f"SELECT {s.ITEM_ID}, {s.TITLE}, {s.CATEGORY}, {s.BRAND} FROM {s.ITEMS} "
                f"WHERE {s.ITEM_ID} IN (SELECT unnest(?::VARCHAR[]))", [missing]).fetchall()
        found = {row[0]: ItemInfo(row[1], row[2], row[3]) for row in rows}
        with _lock:
            known.update({item: found.get(item) for item in missing})  # None: not in the catalogue
    return {item: info for item in wanted if (info := known.get(item)) is not None}


def utc_now() -> datetime:
    """Now, as naive UTC (how rule windows and event times are stored)."""
    return datetime.now(UTC).replace(tzinfo=None)


# --------------------------------------------------------------------------- helpers


def _fields(explanation: ItemExplanation) -> dict[str, Any]:
    return {f.name: getattr(explanation, f.name) for f in dataclasses.fields(ItemExplanation)}


def _added(user_id: str, item: RecommendedItem, effects: Sequence[RuleEffect], now: datetime) -> RuledExplanation:
    """The explanation of an item a pin added: the rule, and no model part (NaN score, no reasons)."""
    return RuledExplanation(
        user_id=user_id, item_id=item.item_id, title=item.title, rank=item.rank, score=math.nan, base_value=math.nan,
        contributions=[], history=[], convergence_delta=0.0, attention_share=0.0, reasons=[],
        counterfactual=_what_would_change(effects, now), rules=(_capital(describe(effects, now)),), added=True)


def _what_would_change(effects: Sequence[RuleEffect], now: datetime) -> str:
    """What would change a ruled item's place: its rule (said where the model's counterfactual goes)."""
    names = " and ".join(f"'{e.rule}' ({e.author}, {_short_date(e.changed, now)})" for e in effects)
    plural = "s" if len(effects) > 1 else ""
    first = effects[0]
    if first.from_rank is None:
        return f"Merchandising rule{plural} {names} put it in the list; the model does not list it for this customer."
    return (f"Merchandising rule{plural} {names} place{'' if plural else 's'} it at #{first.to_rank}; "
            f"without the rules the model ranks it #{first.from_rank}.")


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _json_safe(value: Any) -> Any:
    """NaN and infinities become None, numpy scalars Python numbers: strict JSON everywhere."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else None
    return value
