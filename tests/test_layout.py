"""The house's layout: no import cycle anywhere in the package, and the core never imports a wing.

Imports are read from the source (top-level and inside functions alike), so a cycle hidden in a
function body is found too.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "hyperoptax"
# The wings stand on the core; the core stands alone.
WINGS = ("hyperoptax.integrations", "hyperoptax.tune", "hyperoptax.cli", "hyperoptax.__main__")


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: pathlib.Path, modules) -> set[str]:
    """The package's modules ``path`` imports, resolved to modules (``from pkg import submodule`` included)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                     for a in node.names]
        else:
            continue
        out.update(n for n in names if n in modules)
    return out


def _graph():
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def test_the_package_has_no_import_cycle():
    graph = _graph()
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for child in sorted(graph[node]):
            if state.get(child) == "open":
                cycle = stack[stack.index(child):] + [child]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if child not in state:
                visit(child, stack + [child])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_the_core_never_imports_a_wing():
    for module, imported in _graph().items():
        if module.startswith(WINGS) or module == "hyperoptax":
            continue
        wings = sorted(m for m in imported if m.startswith(WINGS))
        assert not wings, f"core module {module} imports {wings}"


def test_reports_and_plots_read_results_not_the_driver():
    graph = _graph()
    for module in ("hyperoptax.tune.plotting", "hyperoptax.tune.report", "hyperoptax.tune.records"):
        assert not graph[module] & {"hyperoptax.tune.driver", "hyperoptax.tune.space_strings", "hyperoptax.tune"}, module


def test_every_synthetic_function_is_in_the_config_schema():
    from hyperoptax.tune import config, tasks

    assert set(tasks.FUNCTIONS) == set(config.SYNTHETIC_ARITY)
