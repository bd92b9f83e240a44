"""The house drawn from the imports: no circle between modules of ``mdmest`` and no import that runs
up the layers, deferred (function-level) imports included.

Every ``import`` and ``from ... import`` anywhere in a module's source counts (module level, inside
functions, under ``if TYPE_CHECKING``); ``from a import b`` is an import of the module ``a.b`` when
that is a module, else of ``a``. A module's layer is that of its first name under ``mdmest``
(``mdmest.fusion.training.trainer`` is in "fusion"); the package ``mdmest`` itself re-exports the
public names, so it stands with ``estimation``, the highest layer it imports from.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "mdmest"

#: Top to bottom; a module may import from its own layer (without a circle) and the ones below.
LAYERS = (
    ("fusion", "integrations", "cli"),
    ("tasks", "reference", "experiments"),
    ("estimation", ""),  # "": the package mdmest itself (its __init__)
    ("distributed",),
    # StreamingBound reads a measure through three of its methods and imports nothing of the
    # measures, and DependencyMeasure.streaming() builds one: so it stands with the measures, not
    # a floor above them as ARCHITECTURE.md draws it (that would make streaming() an upward import).
    ("_base", "measures", "wasserstein", "decomposition", "streaming"),
    # _collective: the torch.distributed primitives that feed a measure's scoring step;
    # _mixture: the EM fit behind critics.GaussianMixtureCritic.
    ("functional", "sampling", "critics", "transforms", "_validation", "_version", "io",
     "_collective", "_mixture"),
)  # fmt: skip

#: Circles tolerated for now, as tuples of module names (one name: any circle under it). None.
ALLOWED_CYCLES: tuple = ()


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of ``mdmest`` that ``name`` imports anywhere in its source."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against this module's package
                package = name.split(".")
                package = package[: len(package) - node.level + (1 if is_package else 0)]
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            # ``import mdmest.a.b`` names the module mdmest.a.b; a name inside it, its module.
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _layer(module: str) -> int:
    first = module.split(".")[1] if "." in module else ""
    for depth, names in enumerate(LAYERS):
        if first in names:
            return len(LAYERS) - depth
    raise AssertionError(
        f"{module} is in no layer of tests/test_layers.py: add {first!r} to one of LAYERS"
    )


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _allowed(cycle: list[str]) -> bool:
    for allowed in ALLOWED_CYCLES:
        if len(allowed) == 1 and all(m.startswith(allowed[0] + ".") for m in cycle):
            return True
        if tuple(cycle) == allowed:
            return True
    return False


def test_every_module_has_a_layer():
    for module in _modules():
        _layer(module)


def test_no_import_circle():
    cycles = [cycle for cycle in _cycles(_graph()) if not _allowed(cycle)]
    assert not cycles, "modules that import each other in a circle:\n" + "\n".join(
        " <-> ".join(cycle) for cycle in cycles
    )


def test_no_import_runs_up_the_layers():
    upward = sorted(
        f"{module} imports {target}"
        for module, targets in _graph().items()
        for target in targets
        if _layer(target) > _layer(module)
    )
    assert not upward, "imports that run up the layers:\n" + "\n".join(upward)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from mdmest import functional as Fn", {"mdmest.functional"}),
        ("from mdmest import TotalCorrelation", {"mdmest"}),
        ("def f():\n    from mdmest.measures import MEASURES", {"mdmest.measures"}),
        ("import mdmest.estimation.training", {"mdmest.estimation.training"}),
        ("from .rows import VALIDATE_BELOW_ROWS", {"mdmest.estimation.rows"}),
        ("from . import rows", {"mdmest.estimation.rows"}),
    ],
)
def test_the_graph_resolves_imports_to_modules(tmp_path, source, expected):
    path = tmp_path / "probe.py"
    path.write_text(source)
    assert _imports("mdmest.estimation.evaluation", path, _modules()) == expected


def test_the_checks_catch_a_circle_and_an_upward_import():
    graph = {"mdmest.functional": {"mdmest.measures"}, "mdmest.measures": {"mdmest.functional"}}
    assert _cycles(graph) == [["mdmest.functional", "mdmest.measures"]]
    assert _layer("mdmest.functional") < _layer("mdmest.measures")
