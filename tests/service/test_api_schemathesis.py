"""schemathesis against the live API: the app served by waitress on a loopback port, fuzzed from
the OpenAPI document it serves at /api/v1/openapi.json, signed in as support.

Every check schemathesis has runs (no server error, documented status codes, content types,
headers and bodies, schema-violating input refused, undeclared methods refused, and the
sign-in really enforced: it also sends each request without and with a broken session) over a
bounded number of examples per operation with a fixed seed. A share of the generated customer
ids are real customers (shop ids and pseudonyms), so profiles, explanations and reports are
fuzzed too, not only the 404 path.

The lookup limit per login (service/throttle.py) is lifted for the run (``unthrottled``), so the
fuzzing reaches every route's real answers instead of 429s; 429 is in the document all the same.

The session cookie is handed to schemathesis as the document's ``sessionCookie`` scheme, so it
knows the cookie is the credential (HTTP basic would do as well, at a password hash per request).
The document needs a signed-in user itself, so it is fetched with the session and given to
schemathesis as a file, with the live server as base URL.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from service import openapi
from service.users import SUPPORT
from tests.service.support import ACCOUNTS
from tests.shop import TrainedShop

MAX_EXAMPLES = 10  # per operation and phase (the coverage phase adds its boundary cases)
REAL_CUSTOMERS = 0.25  # the share of generated ids that name a real customer
SEED = 6
TIMEOUT_S = 300
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def _signed_in(base_url: str) -> requests.Session:
    """A session signed in as support through the real sign-in form."""
    session = requests.Session()
    page = session.get(f"{base_url}/login", timeout=10).text
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    name, password = ACCOUNTS[SUPPORT]
    response = session.post(f"{base_url}/login", data={"name": name, "password": password, "csrf": token},
                            allow_redirects=False, timeout=10)
    assert response.status_code == 302
    return session


def _config(folder: Path, shop: TrainedShop, cookie: str) -> Path:
    customers = [*shop.raw_ids[:3], *(shop.pseudonym(raw) for raw in shop.raw_ids[3:6])]
    path = folder / "schemathesis.toml"
    path.write_text(
        "[dictionaries.customers]\n"
        f"values = {json.dumps(customers)}\n\n"
        "[parameters]\n"
        f'"path.id" = {{ dictionary = "customers", probability = {REAL_CUSTOMERS} }}\n\n'
        "[auth.openapi.sessionCookie]\n"
        f"api_key = {json.dumps(cookie)}\n")
    return path


def test_schemathesis_finds_nothing_wrong_with_the_live_api(live_api, trained_shop, tmp_path, unthrottled):
    if not SCHEMATHESIS.exists():
        pytest.skip(f"{SCHEMATHESIS} not found: pip install -r requirements.txt")
    session = _signed_in(live_api)
    served = session.get(f"{live_api}/api/v1/openapi.json", timeout=10)
    assert served.status_code == 200 and served.json() == openapi.document()
    document = tmp_path / "openapi.json"
    document.write_bytes(served.content)
    command = [
        str(SCHEMATHESIS), "--config-file", str(_config(tmp_path, trained_shop, session.cookies["recsight_session"])),
        "run", str(document), "--url", live_api,
        "--exclude-tag", "intake",  # the shop backend's POSTs: 403 to support; fuzzed in test_intake_hostile
        "--checks", "all", "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED), "--workers", "1",
        "--phases", "examples,coverage,fuzzing", "--request-timeout", "60",
        "--report", "junit", "--report-dir", str(tmp_path / "report"),
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=tmp_path,
                         env=dict(os.environ, NO_COLOR="1"))
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-8000:]
    # the six support routes of the eight (the intake's two POSTs are another role's)
    assert "Selected: 6/9" in output and "Tested: 6" in output, output[-3000:]
    assert "No issues found" in output, output[-3000:]
