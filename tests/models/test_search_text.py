"""Text analysis for search: stems, stopwords, Chinese segmentation, surfaces that really occur."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from models.search_text import analyse, clean_text, terms

ROOT = Path(__file__).resolve().parents[2]


def test_plural_and_case_share_a_stem_and_stopwords_go() -> None:
    assert terms("Capacitors for the AC") == terms("capacitor AC") == ["capacitor", "ac"]
    assert terms("Stapling staples") == ["stapl", "stapl"]
    assert terms("the and of") == []


def test_surface_words_are_the_texts_own_words() -> None:
    tokens = analyse("SUPCO Relay/CAPACITORS kit")
    assert [(t.term, t.surface) for t in tokens] == [
        ("supco", "SUPCO"), ("relay", "Relay"), ("capacitor", "CAPACITORS"), ("kit", "kit")]


def test_chinese_titles_are_segmented_with_sub_words() -> None:
    found = terms("不锈钢螺丝刀套装 USB")
    assert "螺丝刀" in found and "螺丝" in found and "不锈钢" in found and "usb" in found
    assert "电容器" in terms("电容器") and "的" not in terms("我的电容器")


def test_nothing_to_index_gives_no_terms() -> None:
    for text in ("", None, "😀🔥", "\x00\x01\x7f", "!!! ??? ...", "   "):
        assert analyse(text) == []


def test_clean_text_drops_control_characters_and_lone_surrogates() -> None:
    assert clean_text("a\x00b\ud800c\nd") == "a b c d"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_every_surface_occurs_in_the_text(text: str) -> None:
    for token in analyse(text):
        assert token.surface in text and token.term


def test_jieba_loads_quietly_and_writes_its_cache_in_our_folder(tmp_path: Path) -> None:
    code = ("import logging; from models.search_text import terms; "
            "assert '电容器' in terms('电容器'); import jieba; print(jieba.dt.tmp_dir)")
    env = {"PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # jieba's "Building prefix dict..." lines go to logging, not stderr
    assert (tmp_path / "recsight-jieba" / "jieba.cache").is_file()
