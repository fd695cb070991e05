"""The longest functions of the project's own code (not tests or benches), longest first.

    python bench/longest_functions.py [--top 15] [--ref REV]

With --ref, the same list for a git revision (read with `git show`, nothing checked out),
so a refactor can be compared before and after.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sources(ref: str | None) -> dict[str, str]:
    """Path -> text of every tracked .py file outside tests/ and bench/."""
    listed = subprocess.run(["git", "ls-tree", "-r", "--name-only", ref] if ref else ["git", "ls-files", "*.py"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    out = {}
    for path in listed:
        if not path.endswith(".py") or path.startswith(("tests/", "bench/")):
            continue
        if ref:
            out[path] = subprocess.run(["git", "show", f"{ref}:{path}"], cwd=REPO, capture_output=True,
                                       text=True, check=True).stdout
        else:
            out[path] = (REPO / path).read_text()
    return out


def functions(files: dict[str, str]) -> list[tuple[int, str]]:
    found = []
    for path, text in files.items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno:
                found.append((node.end_lineno - node.lineno + 1, f"{path}:{node.lineno} {node.name}"))
    return sorted(found, reverse=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--ref", help="a git revision instead of the working tree")
    args = parser.parse_args()
    found = functions(sources(args.ref))
    over = sum(1 for n, _ in found if n > 50)
    print(f"{len(found)} functions, {over} longer than 50 lines; the longest:")
    for lines, where in found[: args.top]:
        print(f"  {lines:4d}  {where}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
