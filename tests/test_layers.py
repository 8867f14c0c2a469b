"""The package's import layers (pyproject.toml [tool.importlinter], docs/architecture.md): no
module imports a layer above its own, and no subpackage has an import cycle; the tests share
helpers through tests/helpers/ only."""
from __future__ import annotations

import ast
import shutil
import subprocess

import pytest

from helpers.paths import REPO


@pytest.mark.skipif(shutil.which("lint-imports", path=str(REPO / ".venv" / "bin")) is None
                    and shutil.which("lint-imports") is None,
                    reason="import-linter is not installed (pip install -e '.[dev]')")
def test_the_import_contracts_are_kept():
    tool = shutil.which("lint-imports", path=str(REPO / ".venv" / "bin")) or shutil.which("lint-imports")
    done = subprocess.run([tool, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_an_import_inside_a_function_says_why():
    """Imports inside functions defer a slow library; a project module imported that way hides a
    cycle, unless its line says what it defers (a comment)."""
    offenders = []
    for path in sorted((REPO / "childtuning").rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            stripped = line.strip()
            if line.startswith((" ", "\t")) and stripped.startswith(("from .", "import childtuning", "from childtuning")) \
                    and "#" not in stripped and "TYPE_CHECKING" not in stripped:
                offenders.append(f"{path.relative_to(REPO)}:{number}: {stripped}")
    assert not offenders, "move these imports to the top of their module (or say what they defer):\n" + \
        "\n".join(offenders)


def test_every_module_has_a_layer():
    """A new module is placed on purpose: the layers contract constrains only the modules it names."""
    import re
    import tomllib

    layers = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]["layers"]
    named = {m.strip() for layer in layers for m in re.split(r"[|:]", layer)}
    package = REPO / "childtuning"
    modules = {f"childtuning.{p.stem}" for p in package.glob("*.py") if p.stem != "__init__"}
    modules |= {f"childtuning.{p.name}" for p in package.iterdir() if (p / "__init__.py").is_file()}
    assert not modules - named, f"add {sorted(modules - named)} to a layer in pyproject.toml [tool.importlinter]"


def test_every_module_imports():
    """Each module of the package imports on its own (the fast loop touches every one)."""
    import importlib
    import pkgutil

    import childtuning

    names = [m.name for m in pkgutil.walk_packages(childtuning.__path__, "childtuning.")]
    for name in names:
        importlib.import_module(name)
    assert "childtuning.probe.__main__" in names and len(names) > 60


def imported_names(tree: ast.AST):
    """(line, module name) of every absolute import in `tree`, `__import__("x")` and
    `importlib.import_module("x")` included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in \
                ("__import__", "import_module") and node.args and isinstance(node.args[0], ast.Constant):
            yield node.lineno, str(node.args[0].value)


def test_no_test_module_imports_another():
    """A helper two test modules need lives in tests/helpers/: no file under tests/ imports a test
    module, conftest.py (pytest's plugin, not a library) or another loose module of tests/."""
    tests = REPO / "tests"
    loose = {p.stem for p in tests.glob("*.py")}                 # test_*.py and conftest.py
    offenders = []
    for path in sorted(tests.rglob("*.py")):
        for line, name in imported_names(ast.parse(path.read_text(encoding="utf-8"))):
            top = name.split(".")[0]
            if top in loose or top.startswith("test_"):
                offenders.append(f"{path.relative_to(REPO)}:{line}: imports {name}")
    assert not offenders, ("move what these imports take into a module of tests/helpers/ and import it from "
                           "there (`from helpers.records import ...`):\n" + "\n".join(offenders))
