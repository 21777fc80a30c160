"""The package's structure holds: inference loads no training/export/bench code, ``import quantsr`` and the CLI's
help need no torch, standard-library modules really are, packages import each other without cycles, files stay
under 500 lines."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "quantsr"
HEAVY = ("torch", "numpy", "PIL", "executorch")
# Modules documented as standard library only (the app tooling and the Android bench run without PyTorch).
STDLIB_ONLY = ("quantsr._lazy", "quantsr.artifacts.atomic", "quantsr.artifacts.cards", "quantsr.artifacts.digest",
               "quantsr.artifacts.embedded", "quantsr.artifacts.locations", "quantsr.apps.sync",
               "quantsr.bench.android", "quantsr.bench.report", "quantsr.bench.rows", "quantsr.models.descriptor",
               "quantsr.models.hooks", "quantsr.artifacts.pte_file", "quantsr.runtime.limits", "quantsr.train.resume",
               "quantsr.cli.errors", "quantsr.cli.upscale", "quantsr.cli.parser")
TRAINING_AND_TOOLS = ("quantsr.qat", "quantsr.train", "quantsr.export", "quantsr.bench")
# Lowest first: a package imports only packages before it (README, "Layout").
LAYERS = ("quantsr", "artifacts", "models", "data", "quant", "checkpoints", "runtime", "eval", "train", "qat",
          "export", "apps", "bench", "cli")


def _loaded_after(code: str) -> dict[str, list[str]]:
    """Run ``code`` in a fresh interpreter; return the quantsr modules and heavy libraries it loaded."""
    probe = (f"{code}\nimport json, sys\n"
             "print(json.dumps({'quantsr': sorted(m for m in sys.modules if m.startswith('quantsr')),"
             f"'heavy': sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})}}))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_cpu_upscale_loads_no_training_export_or_bench_code(tmp_path):
    from PIL import Image

    Image.new("RGB", (12, 10), (120, 60, 30)).save(tmp_path / "tiny.png")
    loaded = _loaded_after("import quantsr.runtime\nfrom quantsr import cpu_upscale\n"
                           f"assert cpu_upscale({str(tmp_path / 'tiny.png')!r}).size == (48, 40)")
    offenders = [m for m in loaded["quantsr"] if m.startswith(TRAINING_AND_TOOLS)]
    assert "quantsr.runtime.pte" in loaded["quantsr"] and not offenders, offenders
    # The C++ bindings only: not executorch.runtime / portable_lib, which import the exporter (executorch.exir).
    assert "executorch.extension.pybindings._C" in loaded["heavy"]
    assert not [m for m in loaded["heavy"] if m.startswith(("executorch.exir", "executorch.runtime"))]


def test_import_quantsr_and_the_cli_parser_need_no_torch():
    loaded = _loaded_after("import quantsr\nimport quantsr.cli\nparser = quantsr.cli.parser.build_parser()\n"
                           "try:\n    parser.parse_args(['eval', '--scale', 'four'])\nexcept SystemExit:\n    pass")
    assert loaded["heavy"] == []
    version = subprocess.run([sys.executable, "-m", "quantsr", "--version"], cwd=ROOT, capture_output=True,
                             text=True, check=True)
    assert version.stdout.strip() == f"quantsr {__import__('quantsr').__version__}"


@pytest.mark.parametrize("module", STDLIB_ONLY)
def test_standard_library_only_modules(module):
    assert _loaded_after(f"import {module}")["heavy"] == []


def _imports(path: Path) -> set[str]:
    """Every ``quantsr...`` module a file imports, at any depth, except under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("quantsr"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("quantsr"):
            found.add(node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _package_of(module: str) -> str:
    if module == "quantsr.__main__":  # `python -m quantsr`: the command line's entry point
        return "quantsr.cli"
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else "quantsr"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def test_packages_import_each_other_without_cycles():
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        src = _package_of(_module_name(path))
        for target in _imports(path):
            dst = _package_of(target)
            if dst != src:
                edges.setdefault(src, set()).add(dst)
    state: dict[str, str] = {}

    def walk(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                pytest.fail("import cycle between packages: " + " -> ".join(trail + [node, nxt]))
            if nxt not in state:
                walk(nxt, trail + [node])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            walk(node, [])
    rank = {("quantsr" if name == "quantsr" else f"quantsr.{name}"): i for i, name in enumerate(LAYERS)}
    assert set(rank) >= set(edges) | {d for targets in edges.values() for d in targets}
    upward = [f"{src} -> {dst}" for src, targets in edges.items() for dst in targets if rank[dst] >= rank[src]]
    assert not upward, upward


def test_runtime_sources_import_no_training_export_or_bench_module():
    for path in (PACKAGE / "runtime").rglob("*.py"):
        bad = [m for m in _imports(path) if m.startswith(TRAINING_AND_TOOLS)]
        assert not bad, f"{path.name} imports {bad}"


def test_no_file_over_500_lines():
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 500}
    assert not long, long
