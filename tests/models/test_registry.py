"""Model versions: atomic publication, and one clear error for every unusable artifact."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from analytics import schema as s
from errors import RecsightError
from models import registry


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    s.create_tables(con)
    con.execute(f"INSERT INTO {s.EVENTS} ({s.USER_ID}, {s.ITEM_ID}, {s.EVENT_TYPE}, {s.TS}) "
                f"VALUES ('u', 'i', 'view', TIMESTAMP '2024-01-01')")
    con.execute(f"INSERT INTO {s.ITEMS} ({s.ITEM_ID}) VALUES ('i')")
    return con


def _fill(con, marker: str = "v1"):
    def fill(folder: Path) -> dict:
        (folder / "model.txt").write_text(marker)
        return {"fingerprint": registry.fingerprint(con), "protocol": "temporal", "features": {}, "config": {}}
    return fill


def _one_line_error(call, match: str) -> str:
    with pytest.raises(RecsightError, match=match) as info:
        call()
    assert "\n" not in str(info.value)
    return str(info.value)


def test_write_then_load_current(tmp_path: Path, con) -> None:
    path = registry.write_version(tmp_path, _fill(con))
    artifact = registry.load_current(tmp_path, con)
    assert artifact.path == path
    assert (path / "model.txt").read_text() == "v1"
    assert artifact.metadata["format_version"] == registry.FORMAT_VERSION
    assert {"lightgbm", "torch", "duckdb", "python"} <= set(artifact.metadata["packages"])


def test_fingerprint_follows_the_data(con) -> None:
    before = registry.fingerprint(con)
    assert registry.fingerprint(con) == before
    con.execute(f"UPDATE {s.EVENTS} SET {s.EVENT_TYPE} = 'purchase'")
    assert registry.fingerprint(con) != before


def test_failed_training_run_keeps_the_previous_version(tmp_path: Path, con) -> None:
    first = registry.write_version(tmp_path, _fill(con))

    def dies(folder: Path) -> dict:
        (folder / "model.txt").write_text("half")
        raise RuntimeError("killed half-way")

    with pytest.raises(RuntimeError):
        registry.write_version(tmp_path, dies)
    assert registry.load_current(tmp_path, con).path == first
    assert [p.name for p in (tmp_path / "versions").iterdir()] == [first.name]  # staging removed


def test_missing_models_folder(tmp_path: Path) -> None:
    _one_line_error(lambda: registry.load_current(tmp_path / "nothing"), "no trained model")


def test_corrupt_metadata(tmp_path: Path, con) -> None:
    path = registry.write_version(tmp_path, _fill(con))
    (path / registry.METADATA_FILE).write_text("{not json")
    _one_line_error(lambda: registry.load_current(tmp_path), "corrupt")


def test_pointer_to_a_missing_version(tmp_path: Path, con) -> None:
    registry.write_version(tmp_path, _fill(con))
    (tmp_path / "CURRENT").write_text("gone\n")
    _one_line_error(lambda: registry.load_current(tmp_path), "missing version")


def test_other_format_version(tmp_path: Path, con) -> None:
    path = registry.write_version(tmp_path, _fill(con))
    meta = json.loads((path / registry.METADATA_FILE).read_text())
    meta["format_version"] = 999
    (path / registry.METADATA_FILE).write_text(json.dumps(meta))
    _one_line_error(lambda: registry.load_current(tmp_path), "format 999")


def test_model_trained_on_other_data_is_refused(tmp_path: Path, con) -> None:
    registry.write_version(tmp_path, _fill(con))
    con.execute(f"INSERT INTO {s.EVENTS} ({s.USER_ID}, {s.ITEM_ID}, {s.EVENT_TYPE}, {s.TS}) "
                f"VALUES ('u2', 'i', 'view', TIMESTAMP '2024-01-02')")
    _one_line_error(lambda: registry.load_current(tmp_path, con), "trained on other data")


# --------------------------------------------------------------------------- the registry's readers


def test_current_versions_and_metadata_read_what_write_version_wrote(tmp_path: Path, con) -> None:
    assert registry.current(tmp_path / "nothing") is None
    assert registry.versions(tmp_path / "nothing") == []
    first = registry.write_version(tmp_path, _fill(con, "v1"))
    (tmp_path / registry.VERSIONS_DIR / "20990101-000000-zzzzzz").mkdir()  # names sort by training time
    (tmp_path / registry.VERSIONS_DIR / ".staging-half").mkdir()  # never a version
    assert registry.current(tmp_path) == first.name
    assert registry.versions(tmp_path) == ["20990101-000000-zzzzzz", first.name]
    assert registry.metadata(tmp_path)["protocol"] == "temporal"
    assert registry.metadata(tmp_path, first.name) == registry.load_current(tmp_path).metadata
    _one_line_error(lambda: registry.metadata(tmp_path, "20990101-000000-zzzzzz"), "has no metadata.json")
    _one_line_error(lambda: registry.metadata(tmp_path, "../.."), "is not in")
    _one_line_error(lambda: registry.metadata(tmp_path, ".staging-half"), "is not in")


def test_the_readers_say_what_is_wrong_in_one_line(tmp_path: Path, con) -> None:
    path = registry.write_version(tmp_path, _fill(con))
    (path / registry.METADATA_FILE).write_text("[1, 2]")  # JSON, but not metadata
    _one_line_error(lambda: registry.metadata(tmp_path, path.name), "corrupt")
    _one_line_error(lambda: registry.metadata(tmp_path), "corrupt")
    (tmp_path / registry.CURRENT_FILE).write_text("\n")
    assert registry.current(tmp_path) is None  # an empty pointer names no version
    (tmp_path / registry.CURRENT_FILE).write_bytes(b"\xff\xfe")
    _one_line_error(lambda: registry.current(tmp_path), "cannot read")


def test_training_never_prunes_a_pinned_version(tmp_path: Path, con) -> None:
    """An experiment serves its variants' versions for weeks: new training must not delete them."""
    versions = tmp_path / registry.VERSIONS_DIR
    for old in ("20000101-000000-aaaaaa", "20000101-000001-bbbbbb"):  # older than anything trained now
        (versions / old).mkdir(parents=True)
    registry.pin_versions(tmp_path, ["20000101-000000-aaaaaa"])
    assert registry.pinned_versions(tmp_path) == {"20000101-000000-aaaaaa"}
    for n in range(registry.KEEP_VERSIONS):
        registry.write_version(tmp_path, _fill(con, f"v{n}"))
    left = {p.name for p in versions.iterdir()}
    assert "20000101-000000-aaaaaa" in left, "the pinned version was pruned"
    assert "20000101-000001-bbbbbb" not in left, "an old version nobody pinned stays"
    registry.pin_versions(tmp_path, [])  # the experiment is over: the next training may prune it
    registry.write_version(tmp_path, _fill(con, "v9"))
    assert not (versions / "20000101-000000-aaaaaa").exists()
