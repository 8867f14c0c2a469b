"""Which modules of childtuning/ a coverage.py run touched none of: no line of any function body ran.

    python tests/untouched_modules.py [DATA_FILE]      # default: .coverage (what `coverage run` wrote)

`make test-fast-coverage` runs the fast tests under coverage and then this; it prints each module none
of whose function bodies ran (a module without functions: that was never imported) and exits 1 if there
is one. Importing a module runs its `def` lines, not its functions, so an import alone does not count.
Not a test module (pytest does not collect it): a script that reads the data file a run left.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

from coverage import CoverageData

PACKAGE = Path(__file__).resolve().parents[1] / "childtuning"


def body_lines(source: str) -> set[int]:
    """The line numbers of the statements inside every function of `source` (its docstring left out:
    it does not run)."""
    lines = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                body = body[1:]
            lines |= {n.lineno for stmt in body for n in ast.walk(stmt) if isinstance(n, ast.stmt)}
    return lines


def untouched(data_file: str, package: Path = PACKAGE) -> tuple[list[str], int]:
    """(the package's modules that the run touched none of, relative to its parent; how many modules)."""
    data = CoverageData(basename=data_file)
    data.read()
    executed = {str(Path(f).resolve()): set(data.lines(f) or ()) for f in data.measured_files()}
    modules = sorted(package.rglob("*.py"))
    out = []
    for path in modules:
        ran = executed.get(str(path.resolve())) or set()      # coverage lists unimported files with no lines
        functions = body_lines(path.read_text(encoding="utf-8"))
        if not (ran & functions if functions else ran):
            out.append(str(path.relative_to(package.parent)))
    return out, len(modules)


def main(argv: list[str]) -> int:
    data_file = argv[0] if argv else ".coverage"
    if not Path(data_file).is_file():
        print(f"no coverage data file {data_file}: make one with python -m coverage run --source=childtuning "
              "-m pytest ...", file=sys.stderr)
        return 2
    missed, total = untouched(data_file)
    if not missed:
        print(f"every one of the {total} modules of childtuning/ ran a function body (or, without functions, "
              "was imported)")
        return 0
    print(f"{len(missed)} of the {total} modules of childtuning/ ran no function body in this run (add a fast "
          "test that calls one):")
    print("\n".join(f"  {m}" for m in missed))
    return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
