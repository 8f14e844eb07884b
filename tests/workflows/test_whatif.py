"""What if (customer page): the customer's list re-scored with past items taken out or an event
added, on a copy of the session's trained shop. The list a what-if shows is the one
:meth:`Recommender.rescore` gives for the same change; removing the customer's strongest past item
really moves the list; bad input is refused with one clear message."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from analytics import schema as s
from errors import RecsightError
from explain.counterfactual import counterfactual_for
from explain.explainer import explain_items
from explain.whatif import ENTERED, LEFT
from models.serving import Recommender
from tests.shop import TrainedShop, untouched_category
from workflows import whatif
from workflows.lookup import K

_DIGITS = r"-?\d+\.\d+"


def _strongest_past_item(recommender: Recommender, user: str) -> str:
    """The past item carrying most of the top item's score (the counterfactual's first removal),
    else the customer's most recent item."""
    top = explain_items(recommender, recommender.recommend(user, K).head(1))[0]
    found = counterfactual_for(recommender, top, k=K)
    if found.removed:
        return found.removed[0].item_id
    with recommender.connection() as con:
        return con.execute(f"SELECT {s.ITEM_ID} FROM {s.EVENTS} WHERE {s.USER_ID} = ? ORDER BY {s.TS} DESC LIMIT 1",
                           [user]).fetchone()[0]


def test_removing_the_strongest_past_item_changes_the_list_as_rescore_does(
        shop: TrainedShop, recommender: Recommender) -> None:
    (_, user), _ = shop.listed_customers(recommender)[:2]
    item = _strongest_past_item(recommender, user)
    found = whatif.what_if_on(recommender, user, [item], None)
    direct = recommender.rescore(user, K, without_items=[item])
    assert [(i.item_id, i.rank) for i in found.result.items] == [(i.item_id, i.rank) for i in direct.items]
    assert [i.score for i in found.result.items] == pytest.approx([i.score for i in direct.items])
    now = [i.item_id for i in recommender.recommend(user, K).items]
    assert [i.item_id for i in found.result.items] != now  # the list really changed
    assert found.any and found.removed == [item]
    entered = {m.item_id for m in found.moves if m.kind == ENTERED}
    left = {m.item_id for m in found.moves if m.kind == LEFT}
    assert entered == {i.item_id for i in found.result.items} - set(now)
    assert left == set(now) - {i.item_id for i in found.result.items}
    for move in found.moves:
        assert move.sentence and move.title
        assert not re.search(_DIGITS, move.sentence)  # ranks only, never raw scores


def test_an_added_event_is_the_rescore_of_that_event(shop: TrainedShop, recommender: Recommender) -> None:
    (_, user), _ = shop.listed_customers(recommender)[:2]
    _, items = untouched_category(recommender, user)
    found = whatif.what_if_on(recommender, user, [], (items[0], s.CART))
    direct = recommender.rescore(user, K, **whatif.rescore_args(recommender, user, (items[0], s.CART)))
    assert [i.item_id for i in found.result.items] == [i.item_id for i in direct.items]
    assert items[0] not in {i.item_id for i in found.result.items}  # acted on: no candidate any more
    assert found.added == (items[0], s.CART)


@pytest.fixture(scope="module")
def served(trained_shop: TrainedShop) -> Iterator[Recommender]:
    """The session's shop served read-only (a what-if that is refused writes nothing)."""
    rec = Recommender.load(trained_shop.db, trained_shop.models)
    yield rec
    rec.close()


@pytest.mark.parametrize(("removed", "add", "message"), [
    ([], None, "pick past items"),
    (["no-such-item"], None, "not among this customer's past items"),
    ([f"i{n}" for n in range(whatif.MAX_REMOVED + 1)], None, f"at most {whatif.MAX_REMOVED}"),
    ([], ("no-such-item", s.VIEW), "catalogue"),
    ([], ("ITEM", "teleport"), "must be one of"),
    ([], ("ITEM", s.RETURN), "must be one of"),
    ([], ("", s.VIEW), "type the id"),
])
def test_bad_input_is_refused_with_one_clear_message(trained_shop: TrainedShop, served: Recommender, removed, add,
                                                     message) -> None:
    (_, user), _ = trained_shop.listed_customers(served)[:2]
    if add is not None and add[0] == "ITEM":
        with served.connection() as con:
            add = (con.execute(f"SELECT min({s.ITEM_ID}) FROM {s.ITEMS}").fetchone()[0], add[1])
    with pytest.raises(RecsightError, match=message) as refused:
        whatif.what_if_on(served, user, removed, add)
    assert "\n" not in str(refused.value)


def test_a_lookup_under_an_older_model_is_refused(trained_shop: TrainedShop, tmp_path) -> None:
    settings = trained_shop.settings(tmp_path)
    with pytest.raises(RecsightError, match="look the customer up again"):
        whatif.what_if(settings, "c_0", "an-older-version", ["x"], None)
