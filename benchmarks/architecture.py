"""Structural measures of the `detbench` package: import cycles, report lookups by string, size.

    python benchmarks/architecture.py [--root src/detbench] [--tests tests]

Prints, for the package under ROOT:
- the import cycles between its modules, counting imports inside functions (strongly connected components of the
  graph of every `import`/`from ... import` anywhere in a module);
- the lookups of a report's top-level section names by string outside `report/` (`x["latency"]`, `x.get("memory")`),
  each with its place;
- the imports inside functions, internal and external, and those without a comment giving the reason (on the
  import's line, or on a comment line just above the function's run of imports);
- the lines of the package, and the modules no test imports.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

SECTION_NAMES = ("metadata", "model_complexity", "latency", "throughput", "memory", "gpu", "host_load",
                 "statistics", "stopping", "pipeline", "setup_cache", "model_check", "inputs", "settings", "config",
                 "environment", "samples", "rounds", "study", "timing_phases_s", "parity")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def imported(tree: ast.AST, name: str, known: dict[str, Path], package: str) -> Iterator[tuple[str, ast.AST]]:
    """(module, node) for every import of a module of the package in `tree`."""
    is_package = known[name].name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == package:
                    yield _closest(alias.name, known), node
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != package:
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield (full if full in known else _closest(base, known)), node


def _closest(dotted: str, known: dict[str, Path]) -> str:
    parts = dotted.split(".")
    while parts and ".".join(parts) not in known:
        parts.pop()
    return ".".join(parts)


def inside_function(tree: ast.AST) -> set[int]:
    """ids of import nodes that sit inside a function."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found.update(id(inner) for inner in ast.walk(node) if isinstance(inner, (ast.Import, ast.ImportFrom)))
    return found


def unexplained(tree: ast.AST, lines: list[str]) -> Iterator[int]:
    """Line numbers of imports inside functions with no reason: no comment on the line, nor on the comment lines
    just above the run of imports it belongs to."""
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for inner in node.body:
            for child in ast.walk(inner):
                if not isinstance(child, (ast.Import, ast.ImportFrom)):
                    continue
                line = child.lineno
                if "#" in lines[line - 1]:
                    continue
                above = line - 1
                while above > 0 and (lines[above - 1].strip().startswith(("import ", "from "))
                                     or not lines[above - 1].strip()):
                    above -= 1
                if not (above > 0 and lines[above - 1].strip().startswith("#")):
                    yield line


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def section_lookups(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            key = node.slice.value
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
              and node.args and isinstance(node.args[0], ast.Constant)):
            key = node.args[0].value
        if isinstance(key, str) and key in SECTION_NAMES:
            yield node.lineno, key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="src/detbench")
    parser.add_argument("--tests", default="tests")
    args = parser.parse_args(argv)
    root = Path(args.root)
    package = root.name
    known = modules(root)
    graph: dict[str, set[str]] = {name: set() for name in known}
    in_function = {"internal": 0, "external": 0}
    lookups: list[str] = []
    no_reason: list[str] = []
    lines = 0
    for name, path in known.items():
        source = path.read_text()
        lines += source.count("\n")
        tree = ast.parse(source)
        for target, _ in imported(tree, name, known, package):
            if target and target != name:
                graph[name].add(target)
        local = inside_function(tree)
        no_reason += [f"{path}:{line}" for line in sorted(set(unexplained(tree, source.splitlines())))]
        for node in ast.walk(tree):
            if id(node) in local:
                if isinstance(node, ast.ImportFrom):
                    internal = bool(node.level) or (node.module or "").startswith(package)
                else:
                    internal = any(a.name.startswith(package) for a in node.names)
                in_function["internal" if internal else "external"] += 1
        if not name.startswith(f"{package}.report"):
            lookups += [f"{path}:{line}: {key!r}" for line, key in section_lookups(tree)]
    found = cycles(graph)
    print(f"modules: {len(known)}, lines: {lines}")
    print(f"import cycles (imports inside functions counted): {len(found)}")
    for component in found:
        print("  " + " <-> ".join(component))
    print(f"imports inside functions: {sum(in_function.values())} ({in_function['internal']} internal, "
          f"{in_function['external']} external), {len(no_reason)} without a reason")
    for line in no_reason:
        print("  " + line)
    print(f"report section names looked up by string outside {package}/report: {len(lookups)}")
    for line in lookups:
        print("  " + line)
    tested: set[str] = set()
    for path in Path(args.tests).rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(package):
                tested.add(_closest(node.module, known))
                tested.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known)
            elif isinstance(node, ast.Import):
                tested.update(_closest(a.name, known) for a in node.names if a.name.startswith(package))
    untested = sorted(name for name in known if name not in tested and not known[name].name == "__init__.py")
    print(f"modules no test imports: {len(untested)}")
    for name in untested:
        print("  " + name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
