"""The layout: imports go one way (schemas, readers, assets, pipelines) with no cycles, and the
code location loads through Dagster's own command line as `make dev` and the daemon load it."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from conftest import TEST_KEY

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["schemas", "readers", "assets", "pipelines"]   # each may import only those before it


def modules() -> dict[str, Path]:
    out = {}
    for layer in LAYERS:
        for path in (ROOT / layer).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def imports(name: str, path: Path) -> set[str]:
    """The project modules ``name`` imports (anywhere in the file, lazily or not)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m.split(".")[0] in LAYERS}


def test_the_layer_rule_finds_a_backward_import(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("from pipelines.cli import main\nimport assets.ingest\n")
    assert imports("schemas.x", bad) == {"pipelines.cli", "pipelines.cli.main", "assets.ingest"}


def test_imports_go_one_way():
    backward = []
    for name, path in modules().items():
        rank = LAYERS.index(name.split(".")[0])
        for target in imports(name, path):
            if LAYERS.index(target.split(".")[0]) > rank:
                backward.append(f"{name} imports {target}")
    assert not backward


def test_the_report_renderer_is_a_library_of_its_own():
    mods = modules()
    for name, path in mods.items():
        if name.startswith("assets.render"):
            outside = {t for t in imports(name, path)
                       if not t.startswith("assets.render") and not t.startswith("schemas")}
            assert not outside, (name, outside)


def test_no_import_cycles():
    mods = modules()
    graph = {n: {t if t in mods else t.rpartition(".")[0] for t in imports(n, p)} & set(mods)
             for n, p in mods.items()}
    for n in graph:      # a package's __init__ importing its own submodules is not a cycle
        graph[n] = {t for t in graph[n] if t != n and not t.startswith(n + ".")}
    state: dict[str, int] = {}
    cycles = []

    def visit(n, stack):
        state[n] = 1
        for t in graph[n]:
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t, stack + [t])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])
    assert not cycles


def test_dagster_validates_the_code_location(tmp_path):
    env = {**os.environ, "CAKUPAN_HMAC_KEY": TEST_KEY, "DAGSTER_HOME": str(tmp_path),
           "CAKUPAN_WAREHOUSE": str(tmp_path / "wh.duckdb")}
    dagster = Path(sys.executable).with_name("dagster")
    done = subprocess.run([str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cakupan" in done.stdout + done.stderr
