"""Merchandising rules where lists are served (workflows/merchandising.py and its call sites), on a
copy of the session's trained shop: an excluded item is in no customer's list and no search result
while its rule holds and comes back after its window; a pinned item's explanation names the rule
beside the model's own reasons; an item a pin adds is marked; the preview counts what a save would
change; a save is audited or does not happen."""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from analytics import schema as s
from analytics.rule_set import EXCLUDE, ITEM, PIN, Rule, RuleSet, Scope
from analytics.rules_store import load_rules, rules_folder, save_rules
from errors import RecsightError
from explain.explainer import explain_ranked
from models.recommendation import RecommendedItem
from models.serving import Recommender
from tests.shop import TrainedShop
from workflows import explaining, merchandising, reports, rules_editing, rules_preview
from workflows.search import search_payload

K = 10
CHANGED = datetime(merchandising.utc_now().year, 1, 1, 9, 0)  # this year's: its date is said without the year


@pytest.fixture(scope="module")
def rec(trained_shop: TrainedShop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recommender]:
    shop = trained_shop.copy_to(tmp_path_factory.mktemp("merchandising"))
    recommender = Recommender.load(shop.db, shop.models)
    yield recommender
    recommender.close()


@pytest.fixture(autouse=True)
def no_rules(rec: Recommender) -> Iterator[Path]:
    """Every test starts with no rules saved, and leaves none."""
    folder = rules_folder(merchandising.shop_path(rec))
    shutil.rmtree(folder, ignore_errors=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


EVERYONE = Scope()


def rule(kind: str, target: str, *, name: str, position: int | None = None, target_type: str = ITEM,
         start: datetime | None = None, end: datetime | None = None, scope: Scope = EVERYONE,
         rule_id: str = "r1") -> Rule:
    return Rule(rule_id, name, kind, target_type, target, "ana", CHANGED, position, None, scope, start, end)


def customers(rec: Recommender) -> list[str]:
    assert rec.top is not None
    return sorted(rec.top.spans)


def most_listed(rec: Recommender) -> str:
    """The item in the most customers' top ``K`` (an exclusion of it changes many lists)."""
    if rec not in _MOST_LISTED:
        counts = Counter(item.item_id for user in customers(rec) for item in rec.recommend(user, K).items)
        _MOST_LISTED[rec] = counts.most_common(1)[0][0]
    return _MOST_LISTED[rec]


_MOST_LISTED: dict[Recommender, str] = {}


def title_of(rec: Recommender, item_id: str) -> str:
    with rec.connection() as con:
        return con.execute(f"SELECT {s.TITLE} FROM {s.ITEMS} WHERE {s.ITEM_ID} = ?", [item_id]).fetchone()[0]


def found_by_search(rec: Recommender, item_id: str, user: str | None) -> bool:
    payload = search_payload(rec, title_of(rec, item_id), user, K)
    return item_id in {item["item_id"] for item in payload["items"]}


def test_an_excluded_item_is_in_no_list_and_no_search_while_its_rule_holds(rec: Recommender,
                                                                            no_rules: Path) -> None:
    item = most_listed(rec)
    users = customers(rec)
    holders = [u for u in users if item in {i.item_id for i in rec.recommend(u, K).items}]
    assert len(holders) >= 5 and found_by_search(rec, item, None)  # it is there to be excluded
    now = merchandising.utc_now()
    recall = rule(EXCLUDE, item, name="Recall", start=now - timedelta(hours=1), end=now + timedelta(hours=1))
    save_rules(no_rules, [recall], "ana")
    for user in users:  # every customer, through the hook every interface calls
        listed = merchandising.merchandised(rec, user, K)
        assert item not in {i.item_id for i in listed.items}
        assert len(listed.items) == len(rec.recommend(user, K).items)  # the next item moved up
    for user in holders[:3]:  # the API's answer (explained too) and search, anonymous and as the customer
        payload = explaining.recommendation_payload(rec, user, K, explain=True)
        assert item not in {i["item_id"] for i in payload["items"]}
        assert not found_by_search(rec, item, user)
    assert not found_by_search(rec, item, None)
    later = now + timedelta(hours=2)  # after the window: the model's lists again
    assert item in {i.item_id for i in merchandising.merchandised(rec, holders[0], K, now=later).items}
    # a new version whose rule has ended: back in the API's lists and in search
    save_rules(no_rules, [rule(EXCLUDE, item, name="Recall", end=now - timedelta(minutes=1))], "ana", expected=1)
    assert item in {i["item_id"] for i in explaining.recommendation_payload(rec, holders[0], K)["items"]}
    assert found_by_search(rec, item, None)


def test_exclusion_by_country_scope_holds_only_for_that_countrys_customers(rec: Recommender) -> None:
    item = most_listed(rec)
    with rec.connection() as con:
        country = dict(con.execute(f"SELECT {s.USER_ID}, {s.COUNTRY} FROM {s.USERS}").fetchall())
    holders = [u for u in customers(rec) if item in {i.item_id for i in rec.recommend(u, K).items}]
    target = country[holders[0]]
    scoped = RuleSet((rule(EXCLUDE, item, name="Not in one country", scope=Scope(countries=(target,))),), 1)
    for user in holders:
        shown = {i.item_id for i in merchandising.merchandised(rec, user, K, rules=scoped).items}
        assert (item in shown) is (country[user] != target)
    assert any(country[u] != target for u in holders)  # both sides were seen


def test_a_pinned_item_says_which_rule_moved_it_beside_the_models_reasons(rec: Recommender, no_rules: Path) -> None:
    user = customers(rec)[0]
    model = rec.recommend(user, 50)
    pinned = model.items[11]  # #12 for the model: outside the top 10 without the rule
    save_rules(no_rules, [rule(PIN, pinned.item_id, name="Winter tents", position=2)], "ana")
    explanation = explaining.explain_customer(rec, user, K)
    item = explanation.items[1]
    assert item.item_id == pinned.item_id and item.rank == 2
    assert isinstance(item, merchandising.RuledExplanation)
    assert item.rules == ("Moved from #12 to #2 by rule 'Winter tents', ana, 1 Jan",)
    assert "Winter tents" in (item.counterfactual or "") and "#12" in (item.counterfactual or "")
    (alone,) = explain_ranked(rec, user, [pinned.item_id])  # the model's own explanation of the item
    assert item.reasons == alone.reasons and item.score == pytest.approx(alone.score)
    assert item.base_value + sum(c.contribution for c in item.contributions) == pytest.approx(item.score, abs=1e-6)
    assert not any("Winter tents" in reason for reason in item.reasons)  # the SHAP reasons stay the model's
    others = [i for i in explanation.items if i.item_id != pinned.item_id]
    assert not any(isinstance(i, merchandising.RuledExplanation) for i in others)
    report = reports.report_bytes(rec, user, "html", K, explanation=explanation).decode()
    assert "Rule:</span> Moved from #12 to #2 by rule &#x27;Winter tents&#x27;" in report
    payload = explaining.recommendation_payload(rec, user, K, explain=True)
    listed = payload["items"][1]
    assert listed["rules"][0]["rule"] == "Winter tents" and listed["rules"][0]["from_rank"] == 12
    assert listed["explanation"]["rules"] == list(item.rules)


def test_an_item_a_pin_adds_is_marked_and_has_no_model_explanation(rec: Recommender, no_rules: Path) -> None:
    user = customers(rec)[1]
    candidates = {i.item_id for i in rec.recommend(user, 1_000_000).items}
    with rec.connection() as con:
        outside = next(row[0] for row in con.execute(f"SELECT {s.ITEM_ID} FROM {s.ITEMS} ORDER BY 1").fetchall()
                       if row[0] not in candidates)
    save_rules(no_rules, [rule(PIN, outside, name="New tent", position=1)], "ana")
    payload = explaining.recommendation_payload(rec, user, K, explain=True)
    first = payload["items"][0]
    assert first["item_id"] == outside and first["added_by_rule"] is True and first["score"] is None
    assert first["rule_note"].startswith("Added at #1 by rule 'New tent'")
    assert first["explanation"]["contributions"] == [] and first["explanation"]["reasons"] == []
    assert [i["rank"] for i in payload["items"]] == list(range(1, K + 1))
    text = explaining.format_recommendations(payload)
    assert "added" in text.splitlines()[1] and text.splitlines()[2].startswith("       [rule] Added at #1")
    explanation = explaining.explain_customer(rec, user, K)
    assert b"New tent" in reports.report_bytes(rec, user, "csv", K, explanation=explanation)  # renders, rule said
    assert explanation.items[0].added and explanation.items[1].reasons == rec_reasons(rec, user, 0)
    with pytest.raises(RecsightError, match="added by a merchandising rule"):
        merchandising.require_ranked(*explanation.items[:2])


def rec_reasons(rec: Recommender, user: str, n: int) -> list[str]:
    """The model's reasons for its own item ``n`` (explained alone, at its rank in the full list)."""
    (alone,) = explain_ranked(rec, user, [rec.recommend(user, K).items[n].item_id])
    return alone.reasons


def test_no_rules_leave_every_list_as_the_model_ranks_it(rec: Recommender) -> None:
    for user in customers(rec)[:20]:
        listed = merchandising.merchandised(rec, user, K)
        assert listed.items == rec.recommend(user, K).items
        assert all(type(item) is RecommendedItem for item in listed.items)


def test_preview_counts_the_lists_a_draft_changes(rec: Recommender) -> None:
    item = most_listed(rec)
    holders = [u for u in customers(rec) if item in {i.item_id for i in rec.recommend(u, K).items}]
    draft = RuleSet((rule(EXCLUDE, item, name="Out of stock"),), None)
    result = rules_preview.preview(rec, draft, k=K, samples=2)
    assert result.customers == len(customers(rec))
    assert (result.changed, result.left, result.entered) == (len(holders), len(holders), len(holders))
    assert result.by_rule == {"Out of stock": len(holders)}
    sample = result.samples[0]
    assert sample.user_id in holders
    assert item in {row.item_id for row in sample.before} and item not in {row.item_id for row in sample.after}
    assert any(row.note.startswith("removed") for row in sample.before)
    assert any(row.note == "enters the list" for row in sample.after)
    assert f"{len(holders):,} of {result.customers:,}" in result.summary()
    unchanged = rules_preview.preview(rec, draft, base=draft, k=K)  # against the same rules: nothing moves
    assert unchanged.changed == 0 and "No list changes" in unchanged.summary()


def test_preview_reports_pin_conflicts(rec: Recommender) -> None:
    top = rec.recommend(customers(rec)[0], 30).items
    draft = RuleSet((rule(PIN, top[20].item_id, name="first", position=1, rule_id="r1"),
                     rule(PIN, top[25].item_id, name="second", position=1, rule_id="r2")), None)
    result = rules_preview.preview(rec, draft, k=K)
    had_it_first = sum(rec.recommend(user, 1).items[0].item_id == top[20].item_id for user in customers(rec))
    assert result.changed == result.customers - had_it_first  # the pin changes every other list
    assert result.conflicts == {"pin 'second' not applied: #1 is taken by 'first'": result.customers}


def test_saving_is_audited_or_does_not_happen(rec: Recommender, no_rules: Path) -> None:
    db = merchandising.shop_path(rec)
    rows: list[str] = []
    new = rules_editing.rule_from_form({"kind": "exclude", "target_type": "item", "target": most_listed(rec),
                                        "name": "Recall"}, "ana", load_rules(no_rules))
    saved = rules_editing.add_rule(db, new, "ana", expected=0, record=rows.append)
    assert saved.version == 1
    assert rows == [f"rules v1: added 'Recall': exclude item {new.target}; all customers; always"]

    def broken(detail: str) -> None:
        raise RecsightError("the audit log cannot be written")

    with pytest.raises(RecsightError, match="audit log"):
        rules_editing.remove_rule(db, new.rule_id, "bo", expected=1, record=broken)
    assert load_rules(no_rules).version == 1  # not removed: the removal could not be recorded
    with pytest.raises(RecsightError, match="changed since you opened them"):
        rules_editing.remove_rule(db, new.rule_id, "bo", expected=0, record=rows.append)
    rules_editing.remove_rule(db, new.rule_id, "bo", expected=1, record=rows.append)
    rules_editing.restore_version(db, 1, "ana", expected=2, record=rows.append)
    assert [r.name for r in load_rules(no_rules).rules] == ["Recall"] and load_rules(no_rules).version == 3
    assert rows[-1] == "rules v3: restored the 1 rules of v1"


def test_form_problems_are_one_line_each_and_the_catalogue_is_checked(rec: Recommender) -> None:
    with pytest.raises(RecsightError) as caught:
        rules_editing.rule_from_form({"kind": "pin", "target_type": "item", "target": "", "amount": "0",
                                      "name": "x", "start": "2025-12-24", "end": "2025-12-01"}, "ana", RuleSet())
    assert caught.value.problems == ["the target is empty: name the item, category or brand",
                                     "the position must be 1 or more, not 0", "the end is before (or at) the start"]
    ghost = rules_editing.rule_from_form({"kind": "exclude", "target_type": "brand", "target": "No Such Brand",
                                          "name": "ghost"}, "ana", RuleSet())
    assert rules_editing.catalogue_problems(rec, ghost) == [
        "no brand 'No Such Brand' in the shop's catalogue: pick one of the suggestions"]
    category = rules_editing.suggestions(rec, "category", "")[0].value
    found = rules_editing.rule_from_form({"kind": "boost", "target_type": "category", "target": category.lower(),
                                          "amount": "3", "name": "boost"}, "ana", RuleSet())
    assert rules_editing.catalogue_problems(rec, found) == [] and found.shift == 3 and found.position is None


def test_an_experiment_variant_serves_its_rule_set_version_and_the_current_exclusions(
        rec: Recommender, no_rules: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from analytics.experiments_store import Experiment, Variant
    from models.assignment import assign

    item = most_listed(rec)
    user = customers(rec)[2]
    pinned = rec.recommend(user, 30).items[15].item_id
    save_rules(no_rules, [rule(PIN, pinned, name="Old pin", position=1)], "ana")  # v1: what variant B tests
    save_rules(no_rules, [rule(EXCLUDE, item, name="Recall", rule_id="r2")], "bo", expected=1)  # v2: current
    experiment = Experiment("exp1", "pin test", "a pin lifts clicks", "ctr",
                            (Variant("A", 0.5), Variant("B", 0.5, rules_version="v1")), CHANGED)
    monkeypatch.setattr(merchandising.experiments_store, "running", lambda db_path, now=None: experiment)
    by_variant = {name: next(u for u in customers(rec) if assign(experiment, u).name == name) for name in "AB"}
    a_rules = merchandising.rules_for(rec, by_variant["A"])
    b_rules = merchandising.rules_for(rec, by_variant["B"])
    assert a_rules.version == 2 and [r.name for r in a_rules.rules] == ["Recall"]
    assert b_rules.version == 1 and [r.name for r in b_rules.rules] == ["Old pin", "Recall"]  # a recall holds for all
    b_list = merchandising.merchandised(rec, by_variant["B"], K)
    assert b_list.items[0].item_id == pinned and item not in {i.item_id for i in b_list.items}
    assert merchandising.rules_for(rec, None).version == 2  # anonymous: the current rules
