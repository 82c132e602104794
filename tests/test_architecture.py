"""The package's layers only look down: physics <- data <- prior <- recon <- evaluation <- cli.

Every ``import`` of a module of mrirecon (at the top or inside a function) is read from the
source; an import from a higher layer into a lower one fails this test, naming the line.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Layer of each top-level part (lower numbers are lower layers; equal layers may import each other).
LAYERS = {
    "errors": 0, "files": 0, "devices": 0, "progress": 0, "distributed": 0, "assets": 0, "__init__": 0,
    "physics": 1, "metrics": 1,
    "data": 2,
    "prior": 3,
    "recon": 4,
    "viz": 5, "evaluation": 5,
    "cli": 6,
}  # fmt: skip


def _layer_of_module(name: str) -> int:
    parts = name.split(".")
    assert parts[0] == "mrirecon", name
    if len(parts) == 1:
        return 0
    return LAYERS[parts[1]]


def _sources():
    for path in sorted((ROOT / "mrirecon").rglob("*.py")):
        rel = path.relative_to(ROOT / "mrirecon").with_suffix("")
        yield path, "mrirecon." + ".".join(rel.parts)
    for path in sorted((ROOT / "cli").rglob("*.py")):
        yield path, "mrirecon.cli." + path.stem


def test_every_module_has_a_layer():
    for _, module in _sources():
        _layer_of_module(module)  # KeyError names a part without a layer


def test_no_import_from_a_higher_layer():
    violations = []
    for path, module in _sources():
        own = _layer_of_module(module)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name.startswith("mrirecon") and name != "mrirecon" and _layer_of_module(name) > own:
                    violations.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert not violations, "imports from a higher layer:\n" + "\n".join(violations)


def test_the_physics_layer_knows_nothing_of_diffusion_and_the_prior_nothing_of_k_space():
    for path, module in _sources():
        text = path.read_text()
        if module.startswith("mrirecon.physics"):
            assert "prior" not in {n.split(".")[1] for n in _imported(text) if n.count(".")}, path
        if module.startswith("mrirecon.prior"):
            imported = _imported(text)
            assert not any(n.startswith(("mrirecon.physics.operators", "mrirecon.physics.coils")) for n in imported), path


def _imported(text: str) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {n for n in out if n.startswith("mrirecon")}


def test_the_cli_imports_no_private_names_of_the_library():
    """The CLI is a thin layer over the public Python API: no ``_name`` from ``mrirecon.*`` (its own ``_common`` aside)."""
    violations = []
    for path in sorted((ROOT / "cli").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mrirecon"):
                if node.module.startswith("mrirecon.cli"):
                    continue
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if private or any(p.startswith("_") for p in node.module.split(".")):
                    violations.append(f"{path.relative_to(ROOT)}:{node.lineno} from {node.module} import {private}")
    assert not violations, "the CLI reaches into private names:\n" + "\n".join(violations)


def test_each_reconstruction_default_is_written_once():
    """``steps``' and ``dc_steps``' defaults live in ReconSettings; the API, sampler and CLI read them from there."""
    pattern = __import__("re").compile(r"\b(dc_steps|steps)\s*(:\s*int\s*)?=\s*(8|100)\b")
    hits = []
    for path, module in _sources():
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line) and not line.lstrip().startswith("#"):
                hits.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    allowed = [h for h in hits if h.startswith("mrirecon/recon/settings.py")]
    assert len(allowed) == 2 and len(hits) == 2, "defaults written outside ReconSettings:\n" + "\n".join(hits)
