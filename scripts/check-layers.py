#!/usr/bin/env python3
"""Fails on an import cycle between the modules of a crate, so that every crate keeps layers
you can name (docs/architecture.md#layers): the vocabulary at the bottom imports nothing of
the crate above it, the loop and `lib.rs` on top import what they need.

For every crate of the workspace (`crates/*`, `services/*`), the modules are the entries of
`src/` (a file `x.rs` or a folder `x/`), and, inside each folder module, its own entries. A
module depends on a sibling when one of its files names it by a `crate::` path (in a `use`
or inline) or, inside a folder, by `super::`. Test files (`tests.rs`, `tests/`) are left out:
a test may use anything. `lib.rs` and `main.rs` are the top and are not modules.

    python3 scripts/check-layers.py                            # every crate; exit 1 on a cycle
    python3 scripts/check-layers.py --graph services/aggregator  # the layers of one crate

Python 3.11 standard library only.
"""

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# `crate::a::b`, `crate::{a, b::c}`: the first segment after `crate::` names the module.
CRATE_PATH = re.compile(r"\bcrate::(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)")
SUPER_PATH = re.compile(r"\bsuper::(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)")
COMMENT = re.compile(r"//.*")


def heads(group: str) -> list[str]:
    """The first segment of each path in `name` or `{a, b::c, d}`."""
    if not group.startswith("{"):
        return [group]
    return [part.strip().split("::")[0] for part in group[1:-1].split(",") if part.strip()]


def is_test(path: Path) -> bool:
    return path.name == "tests.rs" or "tests" in path.parts[:-1]


def files_of(entry: Path) -> list[Path]:
    """The files of module `x`: `x.rs` and everything under `x/`, tests left out."""
    files = [entry.with_suffix(".rs")] if entry.with_suffix(".rs").is_file() else []
    if entry.is_dir():
        files += [p for p in entry.rglob("*.rs") if not is_test(p.relative_to(entry))]
    return sorted(files)


def modules(folder: Path) -> dict[str, Path]:
    """The modules of a folder by name (`x` for `x.rs`, `x/` or both), without mod/lib/main."""
    found: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.is_dir() and entry.name != "tests":
            found[entry.name] = entry
        elif entry.suffix == ".rs" and entry.stem not in ("mod", "lib", "main", "tests"):
            found[entry.stem] = entry.with_suffix("")
    return found


def edges(mods: dict[str, Path], pattern: re.Pattern) -> dict[str, set[str]]:
    """Module -> the sibling modules its files name by `pattern`."""
    graph: dict[str, set[str]] = {name: set() for name in mods}
    for name, entry in mods.items():
        for file in files_of(entry):
            text = "\n".join(COMMENT.sub("", line) for line in file.read_text().splitlines())
            for match in pattern.finditer(text):
                for head in heads(match.group(1)):
                    if head in mods and head != name:
                        graph[name].add(head)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or around a circle (the
    strongly connected components of more than one module, Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while (top := stack.pop()) != node:
                group.append(top)
            group.append(node)
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layers(graph: dict[str, set[str]]) -> list[list[str]]:
    """Modules by layer: 0 imports no sibling, n imports only layers below n."""
    level: dict[str, int] = {}

    def depth(node: str) -> int:
        if node not in level:
            level[node] = 1 + max((depth(n) for n in graph[node]), default=-1)
        return level[node]

    for node in graph:
        depth(node)
    out: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for node, n in sorted(level.items()):
        out[n].append(node)
    return out


def graphs(src: Path):
    """(label, graph) for the crate's top level and each of its folder modules."""
    top = modules(src)
    yield str(src.relative_to(ROOT)), edges(top, CRATE_PATH)
    for name, entry in top.items():
        if entry.is_dir() and (inner := modules(entry)):
            yield str(entry.relative_to(ROOT)), edges(inner, SUPER_PATH)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--graph", metavar="CRATE", help="print the layers of this crate")
    args = parser.parse_args()
    if args.graph:
        src = ROOT / args.graph / "src"
        for label, graph in graphs(src):
            if (found := cycles(graph)):
                for group in found:
                    print(f"{label}: cycle among {', '.join(group)}")
                continue
            print(f"{label}:")
            for n, layer in enumerate(layers(graph)):
                print(f"  {n}: {', '.join(layer)}")
        return 0
    crates = sorted(p.parent for p in ROOT.glob("*/*/src") if (p.parent / "Cargo.toml").exists())
    problems = 0
    for crate in crates:
        for label, graph in graphs(crate / "src"):
            for group in cycles(graph):
                print(f"{label}: import cycle among {', '.join(group)}")
                problems += 1
    if problems:
        print(f"{problems} import cycle(s): move the shared type below both modules "
              "(docs/architecture.md#layers)", file=sys.stderr)
        return 1
    print(f"no import cycle in {len(crates)} crates")
    return 0


if __name__ == "__main__":
    sys.exit(main())
