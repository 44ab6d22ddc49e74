"""The map in tests/README.md: every product module has a line saying where its tests are, and those files exist.

A newcomer who adds a module is told here to add its line (and so where its tests go); a renamed or deleted test
file, or a module that no longer exists, fails here too instead of leaving the map stale.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "tests" / "README.md"
#: Where product code lives: every ``.py`` under these folders is a module the map must name.
PRODUCT_DIRS = ("reranker_tasks", "reranker_airflow", "plugins", "dags", "scripts")
#: A map line: ``- `module.py` → …`` (the first backticked path is the module, later ``tests/…`` ones its tests).
LINE = re.compile(r"^- `([^`]+\.py)` → (.+)$")
TEST_PATH = re.compile(r"`(tests/[^`:]+\.py)(?:::[^`]*)?`")


def _only_a_docstring(path: Path) -> bool:
    """A package ``__init__.py`` holding nothing to test: a docstring and dunder settings (``__version__``)."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    for node in body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue
        if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) and t.id.startswith("__") for t in node.targets):
            continue
        return False
    return True


def product_modules() -> set[str]:
    modules = set()
    for folder in PRODUCT_DIRS:
        for path in (ROOT / folder).rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            if path.name == "__init__.py" and _only_a_docstring(path):
                continue
            modules.add(path.relative_to(ROOT).as_posix())
    return modules


def map_lines() -> list[tuple[str, list[str]]]:
    entries = []
    for line in README.read_text(encoding="utf-8").splitlines():
        match = LINE.match(line)
        if match:
            entries.append((match.group(1), TEST_PATH.findall(match.group(2))))
    return entries


def test_the_map_is_found() -> None:
    modules = [module for module, _ in map_lines()]
    assert len(modules) > 40, "tests/README.md: no '- `module.py` → `tests/…`' lines found; did its format change?"
    assert "reranker_tasks/extract.py" in modules and "reranker_airflow/tasks.py" in modules


def test_every_product_module_is_in_the_map() -> None:
    mapped = {module for module, _ in map_lines()}
    missing = sorted(product_modules() - mapped)
    assert not missing, (
        f"modules with no line in tests/README.md: {missing}. Add one per module, e.g. "
        "'- `reranker_tasks/new_step.py` → `tests/unit/test_new_step.py`' (and write that test file)"
    )


def test_the_map_names_only_existing_modules_once() -> None:
    modules = [module for module, _ in map_lines()]
    assert not sorted(set(modules) - product_modules()), "tests/README.md maps modules that do not exist"
    assert not [m for m, n in Counter(modules).items() if n > 1], "a module has more than one line in tests/README.md"


def test_every_module_line_names_test_files_that_exist() -> None:
    no_tests = [module for module, tests in map_lines() if not tests]
    assert not no_tests, f"lines in tests/README.md naming no test file: {no_tests}"
    missing = sorted({test for _, tests in map_lines() for test in tests if not (ROOT / test).is_file()})
    assert not missing, f"tests/README.md names test files that do not exist: {missing}"


def test_every_unit_test_file_is_on_the_map() -> None:
    """The other direction, for tests/unit: a unit test file no line names is a module's tests nobody finds."""
    named = {test for _, tests in map_lines() for test in tests}
    unit_files = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tests" / "unit").glob("test_*.py")}
    unnamed = sorted(unit_files - named - {"tests/unit/test_tests_map.py"})
    assert not unnamed, f"unit test files no line of tests/README.md names: {unnamed}"
