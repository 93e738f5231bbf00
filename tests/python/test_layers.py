"""The package's modules form layers without cycles.

Bottom up: ``_native`` and ``errors``, ``codec``, ``events`` (log records and step hooks
fed by the core's events); ``adapters`` (registry, dispatch,
describe, payload encoding) and ``databases`` (which receive the enqueue callable);
``workflow``; ``queues``; the integrations ``celery`` and ``rq``, and the operator API
``admin``; the dashboard (``web``) over it; the package, the ``acidic-job`` command
(``cli``) and ``__main__`` on top. The graph is read from the source with ``ast`` (every import
statement, at module level or inside a function, is an edge), so a cycle hidden by a
late import inside a function fails here too. An acyclic graph imports in any order;
the second test shows it with real interpreters, each importing another module first.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from typing import Dict, List, Set

import acidic_job

PACKAGE_DIR = os.path.dirname(acidic_job.__file__)
PACKAGE = "acidic_job"

#: which modules each module may import, by layer (lower layers only)
LAYERS: List[Set[str]] = [
    {"_native"},
    {"errors", "codec", "events"},
    {"adapters", "databases"},
    {"workflow"},
    {"queues"},
    {"celery", "rq", "admin"},
    {"web"},
    {"__init__"},
    {"cli"},
    {"__main__"},
]


def module_names() -> List[str]:
    names = [f[:-3] for f in os.listdir(PACKAGE_DIR) if f.endswith(".py")]
    return sorted(names) + ["_native"]


def imports_of(module: str) -> Set[str]:
    """The package modules `module` imports anywhere in its source."""
    if module == "_native":
        return set()
    path = os.path.join(PACKAGE_DIR, f"{module}.py")
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    names = set(module_names())
    found: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and node.module.split(".")[0] != PACKAGE:
                continue
            base = node.module or ""
            if node.level == 0:
                base = base[len(PACKAGE) + 1:] if base != PACKAGE else ""
            if base:
                found.add(base.split(".")[0])
            else:  # from . import a, b: submodules, or names of the package itself
                for alias in node.names:
                    found.add(alias.name if alias.name in names else "__init__")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == PACKAGE:
                    found.add(parts[1] if len(parts) > 1 else "__init__")
    found.discard(module)
    return found


def test_the_import_graph_has_no_cycle_and_follows_the_layers() -> None:
    graph: Dict[str, Set[str]] = {m: imports_of(m) for m in module_names()}
    layer_of = {m: i for i, layer in enumerate(LAYERS) for m in layer}
    assert set(graph) == set(layer_of), "a module without a layer: add it to LAYERS"
    for module, deps in graph.items():
        for dep in deps:
            assert layer_of[dep] < layer_of[module], \
                f"{module} (layer {layer_of[module]}) imports {dep} (layer {layer_of[dep]})"
    # No cycle (implied by the strict layering above, checked on its own all the same).
    state: Dict[str, int] = {}

    def visit(node: str, path: List[str]) -> None:
        if state.get(node) == 1:
            raise AssertionError("import cycle: " + " -> ".join(path + [node]))
        if state.get(node) == 2:
            return
        state[node] = 1
        for dep in sorted(graph[node]):
            visit(dep, path + [node])
        state[node] = 2

    for node in sorted(graph):
        visit(node, [])


def test_the_layers_know_nothing_of_the_layers_above() -> None:
    assert imports_of("adapters") <= {"errors", "codec"}
    assert imports_of("databases") <= {"_native", "errors"}
    assert "queues" not in imports_of("workflow")


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    modules = [m for m in module_names() if m != "__init__"]
    for i, first in enumerate(modules):
        order = modules[i:] + modules[:i]
        code = "import importlib\n" + "".join(
            f"importlib.import_module('{PACKAGE}.{m}')\n" for m in order)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             cwd=os.path.dirname(__file__))
        assert out.returncode == 0, f"importing {order}: {out.stderr}"


def test_the_source_tree_without_the_extension_says_so_in_one_line(tmp_path: object) -> None:
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    source = os.path.join(root, "bindings", "python")
    assert not any(f.startswith("_native") and f.endswith(".so")
                   for f in os.listdir(os.path.join(source, PACKAGE)))
    env = dict(os.environ, PYTHONPATH=source)
    out = subprocess.run([sys.executable, "-c", "import acidic_job"], capture_output=True,
                         text=True, cwd=str(tmp_path), env=env)
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: acidic_job: the compiled extension "
                           "acidic_job._native is missing"), out.stderr
    assert "pip install" in last
    assert "circular" not in out.stderr
    assert "During handling" not in out.stderr  # no chained traceback
