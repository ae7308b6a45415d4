"""Structure figures for the house-keeping issue: lines per package, the largest module, and the
number of function-level imports (``import`` statements inside a function or method body).

    .venv/bin/python bench/structure_stats.py            # a table
    .venv/bin/python bench/structure_stats.py --list     # also every function-level import

Lines are physical lines of the tracked ``*.py`` files (tests excluded); an import is
"function-level" when an ancestor of its ``Import``/``ImportFrom`` node is a function definition.
Imports inside ``if TYPE_CHECKING:`` at module level are module-level and not counted.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("vigil", "toolkit", "detector", "pipelines", "stress", "dags")


def function_level_imports(path: Path) -> list[tuple[int, str]]:
    """(line, statement) for each import inside a function body of the file at ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if in_function and isinstance(child, ast.Import | ast.ImportFrom):
                found.append((child.lineno, ast.unparse(child)))
            visit(child, inside)

    visit(tree, False)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print every function-level import")
    args = parser.parse_args()
    total_lines = 0
    total_imports = 0
    largest: tuple[int, str] = (0, "")
    print(f"{'package':<10} {'files':>5} {'lines':>7} {'fn-imports':>10}")
    for package in PACKAGES:
        files = sorted((ROOT / package).rglob("*.py"))
        lines = imports = 0
        for path in files:
            n = len(path.read_text(encoding="utf-8").splitlines())
            lines += n
            largest = max(largest, (n, str(path.relative_to(ROOT))))
            hits = function_level_imports(path)
            imports += len(hits)
            if args.list:
                for lineno, stmt in hits:
                    print(f"    {path.relative_to(ROOT)}:{lineno}: {stmt}")
        total_lines += lines
        total_imports += imports
        print(f"{package:<10} {len(files):>5} {lines:>7} {imports:>10}")
    print(f"{'total':<10} {'':>5} {total_lines:>7} {total_imports:>10}")
    print(f"largest module: {largest[1]} ({largest[0]} lines)")


if __name__ == "__main__":
    main()
