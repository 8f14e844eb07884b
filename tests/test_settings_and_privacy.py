from pathlib import Path

import pytest

from analytics.privacy import pseudonymise
from errors import RecsightError
from settings import load_settings


def test_settings_read_from_environment():
    s = load_settings({"RECSIGHT_DB": "x.duckdb", "RECSIGHT_PORT": "9000", "RECSIGHT_SECRET": "k"})
    assert s.db_path == Path("x.duckdb") and s.port == 9000 and s.require_secret() == "k"


def test_missing_secret_is_a_clear_error():
    with pytest.raises(RecsightError, match="RECSIGHT_SECRET"):
        load_settings({}).require_secret()


def test_bad_port_is_a_clear_error():
    with pytest.raises(RecsightError, match="RECSIGHT_PORT"):
        load_settings({"RECSIGHT_PORT": "eighty"})


def test_pseudonym_is_stable_keyed_and_hides_the_raw_id():
    a = pseudonymise("12345", "key-one")
    assert a == pseudonymise("12345", "key-one")
    assert a != pseudonymise("12345", "key-two")
    assert a != pseudonymise("12346", "key-one")
    assert "12345" not in a


def test_secret_may_not_be_empty():
    with pytest.raises(ValueError):
        pseudonymise("1", "")
