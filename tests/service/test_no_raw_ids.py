"""After a demo run (synthetic shop -> ingest -> train -> recommendations and reports from the
command line and the API), no raw customer id is anywhere the application writes: not in the
shop's database file, not in the model artifacts, not in any export, not in the audit log.

The raw ids are those of the synthetic export's users.parquet ("U000123"). Each file is searched
twice: its bytes, and its decoded content, because compression hides text from a byte search
(DuckDB compresses strings, Parquet pages are compressed, torch files are zip archives, a PDF's
text is in compressed streams): every column of every DuckDB table and every Parquet file is read
back through DuckDB, zip members are inflated, PDFs go through pdftotext. Each search is first
shown to find raw ids where they are, so a search that finds nothing means something.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb
import pytest

import cli
from service import audit
from service.users import SUPPORT
from tests.conftest import TEST_SECRET
from tests.service.support import sign_in
from tests.shop import TrainedShop

RAW_SHAPE = rb"U[0-9]{6}"  # the synthetic shop's customer ids
_RAW = re.compile(RAW_SHAPE)
PDFTOTEXT = shutil.which("pdftotext")


# --------------------------------------------------------------------------- the searches


def raw_ids_in_bytes(data: bytes, raw_ids: frozenset[str]) -> set[str]:
    return {match.decode() for match in _RAW.findall(data)} & raw_ids


def raw_ids_in_duckdb(path: Path, raw_ids: frozenset[str]) -> set[str]:
    """Raw ids in any column (cast to text, nested values included) of any table of the file."""
    found: set[str] = set()
    audit.release(path)  # the app keeps the audit log open a second after a write (a no-op for other files)
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT temporary").fetchall()
        for schema_name, table in tables:
            found |= _raw_ids_in_relation(con, f'"{schema_name}"."{table}"', raw_ids)
    return found


def raw_ids_in_parquet(path: Path, raw_ids: frozenset[str]) -> set[str]:
    with duckdb.connect() as con:
        con.read_parquet(str(path)).create_view("parquet_file")
        return _raw_ids_in_relation(con, "parquet_file", raw_ids)


def _raw_ids_in_relation(con: duckdb.DuckDBPyConnection, relation: str, raw_ids: frozenset[str]) -> set[str]:
    found: set[str] = set()
    for (column,) in con.execute(f"SELECT column_name FROM (DESCRIBE {relation})").fetchall():
        rows = con.execute(
            f"""SELECT DISTINCT unnest(regexp_extract_all(CAST("{column}" AS VARCHAR), ?))
                FROM {relation} WHERE CAST("{column}" AS VARCHAR) IS NOT NULL""",
            [RAW_SHAPE.decode()]).fetchall()
        found |= {row[0] for row in rows} & raw_ids
    return found


def raw_ids_in_file(path: Path, raw_ids: frozenset[str]) -> set[str]:
    """Bytes first, then the decoded content where compression may hide text."""
    data = path.read_bytes()
    found = raw_ids_in_bytes(data, raw_ids)
    if data.startswith(b"DUCK", 8):
        found |= raw_ids_in_duckdb(path, raw_ids)
    elif data[:4] == b"PAR1":
        found |= raw_ids_in_parquet(path, raw_ids)
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                found |= raw_ids_in_bytes(archive.read(member), raw_ids)
    elif data[:4] == b"%PDF":
        found |= raw_ids_in_bytes(_pdf_text(path).encode(), raw_ids)
    return found


def _pdf_text(path: Path) -> str:
    if PDFTOTEXT is None:
        pytest.skip("pdftotext not found: apt-get install poppler-utils (.ci/run does)")
    return subprocess.run([PDFTOTEXT, str(path), "-"], capture_output=True, text=True, check=True, timeout=60).stdout


def _files(*roots: Path) -> Iterable[Path]:
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from sorted(p for p in root.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- the searches can find


def test_the_searches_find_raw_ids_where_they_are(trained_shop, tmp_path):
    raw = frozenset(trained_shop.raw_ids)
    assert all(_RAW.fullmatch(r.encode()) for r in raw), "the synthetic ids changed shape: update RAW_SHAPE"
    assert raw_ids_in_file(trained_shop.export / "users.parquet", raw) == raw  # compressed Parquet, decoded
    db = tmp_path / "leak.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE t (id INTEGER, notes STRUCT(who VARCHAR)[])")
        con.execute("INSERT INTO t SELECT i, [{'who': 'customer ' || ?}] FROM range(5000) r(i)", ["U000007"])
    assert raw_ids_in_file(db, raw) == {"U000007"}  # inside a nested value of a compressed column
    archive = tmp_path / "leak.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("data.txt", "header\n" * 100 + "U000011\n")
    assert raw_ids_in_file(archive, raw) == {"U000011"}


# --------------------------------------------------------------------------- the demo run


@pytest.fixture(scope="module")
def demo_exports(trained_shop: TrainedShop, api_app: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What a demo run exports for a few customers, named by their raw shop ids."""
    out = tmp_path_factory.mktemp("exports")
    work = tmp_path_factory.mktemp("demo_work")  # the typed customer list holds raw ids: kept apart
    db, models = str(trained_shop.db), str(trained_shop.models)
    customers = list(trained_shop.raw_ids[:3])
    with pytest.MonkeyPatch.context() as patch:  # the autouse environment is per test, this is per module
        patch.setenv("RECSIGHT_SECRET", TEST_SECRET)
        patch.chdir(work)
        for n, raw in enumerate(customers):
            _cli_to_file(["recommend", "--db", db, "--models", models, "--user", raw, "--explain", "--json"],
                         out / f"recommend-{n}.json")
        _cli(["report", "--db", db, "--models", models, "--user", customers[0], "--format", "html",
              "--out", str(out / "report.html")])
        typed = work / "customers.txt"
        typed.write_text("\n".join(customers) + "\n")
        _cli(["report", "--db", db, "--models", models, "--user", str(typed), "--format", "csv",
              "--out", str(out / "batch")])
    client = api_app.server.test_client()
    assert sign_in(client, SUPPORT).status_code == 302
    raw = customers[1]
    for name, url in (("api-recommendations.json", "recommendations?k=5&explain=true"),
                      ("api-profile.json", "profile"), ("api-report.pdf", "report?format=pdf&k=3"),
                      ("api-report.html", "report?format=html&k=3"), ("api-report.csv", "report?format=csv&k=3")):
        response = client.get(f"/api/v1/users/{raw}/{url}")
        assert response.status_code == 200, (url, response.get_data(as_text=True)[:200])
        (out / name).write_bytes(response.data)
    return out


def _cli(argv: list[str]) -> None:
    assert cli.main(argv) == 0, argv


def _cli_to_file(argv: list[str], target: Path) -> None:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        _cli(argv)
    target.write_text(buffer.getvalue())


def test_the_demo_run_exported_what_it_should(demo_exports, trained_shop):
    names = {p.relative_to(demo_exports).as_posix() for p in _files(demo_exports)}
    pseudonyms = [trained_shop.pseudonym(r) for r in trained_shop.raw_ids[:3]]
    assert {f"batch/{p}.csv" for p in pseudonyms} | {"report.html", "api-report.pdf"} <= names
    # the exports do name the customers, by pseudonym; and PDF text extraction works
    assert pseudonyms[1] in _pdf_text(demo_exports / "api-report.pdf")
    assert pseudonyms[0] in (demo_exports / "recommend-0.json").read_text()


def test_no_raw_customer_id_in_the_database_models_exports_or_audit_log(demo_exports, trained_shop, api_settings):
    raw = frozenset(trained_shop.raw_ids)
    searched = list(_files(trained_shop.db, trained_shop.db.with_name(trained_shop.db.name + ".wal"),
                           trained_shop.models, demo_exports, api_settings.audit_db))
    kinds = {p.suffix for p in searched}
    assert {".duckdb", ".parquet", ".txt", ".pt", ".json", ".html", ".pdf", ".csv"} <= kinds, kinds
    leaks = {str(path): sorted(hits)[:5] for path in searched if (hits := raw_ids_in_file(path, raw))}
    assert leaks == {}
