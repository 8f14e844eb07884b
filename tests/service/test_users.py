"""The users file and the `users` command: only salted hashes stored, wrong passwords rejected,
writes atomic, bad input one clear line."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
from pathlib import Path

import pytest

import cli
from errors import RecsightError
from service import users
from service.users import ADMIN, ANALYST, SUPPORT, add_user, get_user, list_users, verify_user
from tests.service.support import write_users


def test_stores_a_salted_hash_never_the_password(tmp_path):
    path = tmp_path / "users.json"
    add_user(path, "ann", ADMIN, "same-password-1")
    add_user(path, "bob", ANALYST, "same-password-1")
    text = path.read_text()
    assert "same-password-1" not in text
    hashes = [entry["password_hash"] for entry in json.loads(text)["users"]]
    assert all(h.startswith("scrypt:") for h in hashes)
    assert hashes[0] != hashes[1]  # salted: the same password hashes differently
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_right_password_signs_in_and_wrong_ones_do_not(tmp_path):
    path = tmp_path / "users.json"
    add_user(path, "sue", SUPPORT, "support-pass-1")
    user = verify_user(path, "sue", "support-pass-1")
    assert (user.name, user.role) == ("sue", SUPPORT) and user.created.endswith("Z")
    assert verify_user(path, "sue", "support-pass-2") is None
    assert verify_user(path, "sue", "SUPPORT-PASS-1") is None
    assert verify_user(path, "Sue", "support-pass-1") is None  # names are exact
    assert verify_user(path, "nobody", "support-pass-1") is None
    assert verify_user(path, "sue", "") is None
    assert verify_user(path, "sue", "x" * 5000) is None
    assert verify_user(tmp_path / "missing.json", "sue", "support-pass-1") is None


def test_list_and_get_follow_the_file(tmp_path):
    path = tmp_path / "users.json"
    assert list_users(path) == []
    add_user(path, "zed", ANALYST, "analyst-pass-1")
    assert get_user(path, "ann") is None
    add_user(path, "ann", ADMIN, "admin-pass-1")  # seen at once although the file was read before
    assert [(u.name, u.role) for u in list_users(path)] == [("ann", ADMIN), ("zed", ANALYST)]
    assert get_user(path, "ann").role == ADMIN


@pytest.mark.parametrize("name, role, password, message", [
    ("ann", ADMIN, "admin-pass-2", "already exists"),
    ("ANN", ANALYST, "admin-pass-2", "already exists"),
    ("eve", "root", "root-pass-1", "unknown role"),
    ("", ADMIN, "admin-pass-1", "user name is required"),
    ("a b", ADMIN, "admin-pass-1", "bad user name"),
    ("x" * 65, ADMIN, "admin-pass-1", "bad user name"),
    ("'; DROP TABLE users; --", ADMIN, "admin-pass-1", "bad user name"),
    ("eve", ADMIN, "short", "at least 8"),
    ("eve", ADMIN, "tab\there-pass", "control characters"),
    ("eve", ADMIN, "p" * 1025, "at most 1024"),
])
def test_bad_input_is_one_clear_line_and_changes_nothing(tmp_path, name, role, password, message):
    path = write_users(tmp_path / "users.json")  # ann, alan, sue
    before = path.read_bytes()
    with pytest.raises(RecsightError, match=message) as raised:
        add_user(path, name, role, password)
    assert "\n" not in str(raised.value)
    assert path.read_bytes() == before


def test_a_failed_write_leaves_the_old_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "users.json"
    add_user(path, "ann", ADMIN, "admin-pass-1")
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(RecsightError, match="No space left"):
        add_user(path, "bob", ANALYST, "analyst-pass-1")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["users.json"]  # no temporary file left behind


def test_the_file_is_never_written_in_place(tmp_path, monkeypatch):
    """Readers see the old file or the new one: the new content goes to a temporary file in the
    same folder that then replaces the old one in one rename."""
    path = tmp_path / "users.json"
    add_user(path, "ann", ADMIN, "admin-pass-1")
    renames: list[tuple[Path, Path, str]] = []
    real_replace = os.replace

    def watching_replace(src, dst):
        renames.append((Path(src), Path(dst), path.read_text()))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", watching_replace)
    add_user(path, "bob", ANALYST, "analyst-pass-1")
    (src, dst, content_before_rename), = renames
    assert dst == path and src.parent == path.parent
    assert "bob" not in content_before_rename  # the old file was untouched until the rename
    assert [u.name for u in list_users(path)] == ["ann", "bob"]


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"users": []}', "not a Recsight users file"),
    ('{"format": "recsight-users", "users": [{"name": "a"}]}', "malformed entry"),
    ('{"format": "recsight-users", "users": [{"name": "a", "role": "boss", "password_hash": "x$y"}]}',
     "unknown role"),
])
def test_a_damaged_file_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "users.json"
    path.write_text(content)
    with pytest.raises(RecsightError, match=message):
        list_users(path)


# --------------------------------------------------------------------------- the command line


def _run_cli(monkeypatch, capsys, argv: list[str], stdin: str = "", tty: bool = False) -> tuple[int, str, str]:
    stream = io.StringIO(stdin)
    stream.isatty = lambda: tty  # type: ignore[method-assign]
    monkeypatch.setattr(sys, "stdin", stream)
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_users_add_reads_one_line_of_stdin_and_list_shows_roles(tmp_path, monkeypatch, capsys):
    path = tmp_path / "users.json"
    monkeypatch.setenv("RECSIGHT_USERS", str(path))
    code, out, _ = _run_cli(monkeypatch, capsys, ["users", "add", "sue", "--role", "support"], "support-pass-1\n")
    assert code == 0 and "added sue (support)" in out and "support-pass-1" not in out
    assert verify_user(path, "sue", "support-pass-1") is not None  # the newline is not part of it
    code, out, _ = _run_cli(monkeypatch, capsys, ["users", "list"])
    assert code == 0 and out.split()[:2] == ["sue", "support"]


def test_users_add_at_a_terminal_asks_twice_without_echo(tmp_path, monkeypatch, capsys):
    import getpass

    path = tmp_path / "users.json"
    monkeypatch.setenv("RECSIGHT_USERS", str(path))
    answers = iter(["admin-pass-1", "admin-pass-1", "admin-pass-2", "admin-pass-3"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    code, _, _ = _run_cli(monkeypatch, capsys, ["users", "add", "ann", "--role", "admin"], tty=True)
    assert code == 0 and verify_user(path, "ann", "admin-pass-1").role == ADMIN
    code, _, err = _run_cli(monkeypatch, capsys, ["users", "add", "bob", "--role", "admin"], tty=True)
    assert code == 2 and err.strip() == "error: the two passwords differ"
    assert get_user(path, "bob") is None


@pytest.mark.parametrize("argv, stdin, message", [
    (["users", "add", "sue", "--role", "support"], "", "no password on standard input"),
    (["users", "add", "sue", "--role", "support"], "short\n", "at least 8 characters"),
    (["users", "add", "bad name", "--role", "support"], "support-pass-1\n", "bad user name"),
])
def test_users_add_errors_are_one_line(tmp_path, monkeypatch, capsys, argv, stdin, message):
    monkeypatch.setenv("RECSIGHT_USERS", str(tmp_path / "users.json"))
    code, _, err = _run_cli(monkeypatch, capsys, argv, stdin)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "users.json").exists()


def test_users_add_refuses_an_unknown_role(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RECSIGHT_USERS", str(tmp_path / "users.json"))
    with pytest.raises(SystemExit) as exited:
        _run_cli(monkeypatch, capsys, ["users", "add", "sue", "--role", "root"], "support-pass-1\n")
    assert exited.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_roles_are_the_three_of_the_design_and_the_intake_service_account():
    assert users.ROLES == ("admin", "analyst", "support", "intake")
