"""Print which of Darkroom's packages import which, and any import that points upward.

Run from the repository root: `python scripts/import_graph.py`. A package is the first level
under `app/` (a module directly in `app/` counts as its own package). The layers are the design
card's: entry points (routers, jobs) on top, then services, then runtime, then the pure rooms.
"""

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "app"
# Higher imports lower; everything not named is a pure room (layer 1).
LAYERS = {"main": 5, "cli": 5, "routers": 4, "jobs": 4, "deps": 4, "idempotency": 4}
LAYERS |= {"ratelimit": 4, "limits": 4, "openapi": 4, "services": 3, "webhooks": 3, "runtime": 2}


def package_of(module: str) -> str | None:
    """The first-level package of a dotted `app.` module name."""
    parts = module.split(".")
    if parts[0] != "app" or len(parts) < 2:
        return None
    return parts[1]


def imports_of(path: Path) -> set[str]:
    """Every `app.` module a file imports, at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("app.")}


def graph() -> dict[str, set[str]]:
    """Package -> the packages it imports (itself left out)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT.parent).with_suffix("")
        source = package_of(".".join(relative.parts))
        if source is None or source == "__init__":
            continue
        for module in imports_of(path):
            target = package_of(module)
            exists = (ROOT / target).exists() or (ROOT / f"{target}.py").exists()
            if target and target != source and exists:
                edges[source].add(target)
    return dict(edges)


def upward_imports(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Each (importer, imported) pair where a package imports one on a higher layer."""
    return sorted(
        (source, target)
        for source, targets in edges.items()
        for target in targets
        if LAYERS.get(target, 1) > LAYERS.get(source, 1)
    )


def cycles(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Each pair of packages that import each other."""
    pairs = {(min(a, b), max(a, b)) for a in edges for b in edges[a] if a in edges.get(b, ())}
    return sorted(pairs)


def main() -> int:
    edges = graph()
    for source in sorted(edges):
        print(f"{source:10} -> {', '.join(sorted(edges[source]))}")
    upward, mutual = upward_imports(edges), cycles(edges)
    print(f"\nupward imports: {len(upward)}")
    for source, target in upward:
        print(f"  {source} -> {target}")
    print(f"package cycles: {len(mutual)}")
    for a, b in mutual:
        print(f"  {a} <-> {b}")
    return 1 if upward or mutual else 0


if __name__ == "__main__":
    sys.exit(main())
