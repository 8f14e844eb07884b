"""The checks that keep the floor plan (issue 12; README "Architecture"), run by ``make test``.

* the import contract of pyproject.toml (``lint-imports``): each layer imports only the layers
  below it, and no package's modules import each other in a cycle; plus the imports *in* the root
  modules, which import-linter does not analyse (it reads packages only);
* a planted back-import breaks the contract (so a passing contract means something);
* ruff with the rule set of pyproject.toml, zero findings;
* sizes: no module over 450 lines outside tests/ and bench/; no function anywhere (tests/ and
  bench/ included) over 80 lines, not counting the lines of multi-line string literals (SQL
  text, docstrings).
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80
SKIPPED_DIRS = {"data", "__pycache__"}  # and hidden folders (.venv, .git, caches)


def _tool(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{path} not found: `make test` installs it from requirements.txt"
    return str(path)


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(cwd), NO_COLOR="1", COLUMNS="200")
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _layers() -> list[set[str]]:
    """The layers contract of pyproject.toml, top first; each layer a set of top-level names."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    return [{name.strip().strip("()") for name in layer.split("|")} for layer in contract["layers"]]


def _python_files() -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith("."))
        found += [Path(folder, name) for name in sorted(files) if name.endswith(".py")]
    return found


def test_the_import_contract_holds() -> None:
    done = _run([_tool("lint-imports"), "--no-cache", "--no-logo"], ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_root_modules_import_only_layers_below_them() -> None:
    """import-linter sees imports *of* app, cli, settings, atomic and errors; these are the
    imports *in* them (lazy ones included)."""
    layers = _layers()
    level = {name: i for i, layer in enumerate(layers) for name in layer}
    wrong = []
    for name, index in level.items():
        path = ROOT / f"{name}.py"
        if not path.is_file():
            continue  # a package: import-linter checks it
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module]
            else:
                continue
            for target in targets:
                top = target.split(".")[0]
                if top in level and level[top] <= index and top != name:
                    wrong.append(f"{name}.py:{node.lineno} imports {target}")
    assert not wrong, "root modules import their own layer or one above it:\n" + "\n".join(wrong)


# A back-import of each kind issue 12 found, planted in a copy of the tree: the contract must fail
# on every one. (file, line to append, what lint-imports must report)
PLANTED = [
    ("analytics/db.py", "import explain.tree_shap", "analytics is not allowed to import explain"),
    ("models/registry.py", "import explain.global_view", "models is not allowed to import explain"),
    ("pages/_parts.py", "import app", "pages is not allowed to import app"),
    ("explain/reasons.py", "import workflows", "explain is not allowed to import workflows"),
    ("service/api.py", "import service.web", "No cycles are allowed in service"),
    ("service/web.py", "import service.api", "No cycles are allowed in service"),
]


def test_the_contract_fails_on_planted_back_imports(tmp_path: Path) -> None:
    tree = tmp_path / "tree"  # the packages import-linter reads, the root modules and the contract
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    for package in config["root_packages"]:
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__"))
    for path in [ROOT / "pyproject.toml", *ROOT.glob("*.py")]:
        shutil.copy(path, tree / path.name)
    for file, line, _ in PLANTED:
        with open(tree / file, "a", encoding="utf-8") as out:
            out.write(f"\n{line}  # planted by tests/test_architecture.py\n")
    done = _run([_tool("lint-imports"), "--no-cache", "--no-logo"], tree)
    report = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 1, report
    missed = [f"{file}: {line}" for file, line, expected in PLANTED if expected not in report]
    assert not missed, f"the contract let these through: {missed}\n{report}"


def test_ruff_finds_nothing() -> None:
    done = _run([_tool("ruff"), "check", "--no-cache", "--output-format", "concise", "."], ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_module_over_450_lines_outside_tests_and_bench() -> None:
    long = {}
    for path in _python_files():
        rel = path.relative_to(ROOT)
        if rel.parts[0] in ("tests", "bench"):
            continue
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES:
            long[str(rel)] = lines
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def string_lines(tree: ast.AST) -> set[int]:
    """The lines of ``tree``'s multi-line string literals (SQL text, docstrings, f-strings)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        is_text = isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))
        if is_text and node.end_lineno > node.lineno:
            lines.update(range(node.lineno, node.end_lineno + 1))
    return lines


def long_functions(source: str) -> list[tuple[int, str, int]]:
    """(line, name, length) of each function longer than the limit, its multi-line strings not counted."""
    tree = ast.parse(source)
    text = string_lines(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            span = range(node.lineno, node.end_lineno + 1)
            length = len(span) - len(text.intersection(span))
            if length > MAX_FUNCTION_LINES:
                found.append((node.lineno, node.name, length))
    return found


def test_function_length_counts_code_not_sql_text() -> None:
    sql = "\n".join(f"        OR x = {i}" for i in range(100))
    body = "\n".join(f"    y{i} = {i}" for i in range(MAX_FUNCTION_LINES - 2))
    source = f'def f():\n    sql = """SELECT 1\n{sql}\n    """\n{body}\n    return sql\n'
    assert long_functions(source) == []  # 80 lines of code (def, 78, return) and 102 of SQL text
    assert long_functions(source.replace("return sql", "y = 1\n    return sql")) == [(1, "f", MAX_FUNCTION_LINES + 1)]


def test_no_function_over_80_lines() -> None:
    long = [f"{path.relative_to(ROOT)}:{line} {name} ({length} lines)"
            for path in _python_files() for line, name, length in long_functions(path.read_text(encoding="utf-8"))]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (not counting multi-line strings):\n" + "\n".join(long)
