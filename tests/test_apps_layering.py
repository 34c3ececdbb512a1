"""The CIFAR-10 study is an application: no library module imports it (only the CLI
dispatches to it), and the report modules hold no study code."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "calibrate"


def _imported_modules(path: Path) -> set[str]:
    """Every module named by an import statement of ``path``, at any depth (function bodies too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_no_library_module_imports_the_study():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "apps" or rel.as_posix() in ("cli.py", "_compat.py"):
            continue
        hits = [m for m in _imported_modules(path) if m == "calibrate.apps" or m.startswith("calibrate.apps.")]
        if hits:
            offenders.append(f"{rel}: {sorted(hits)}")
    assert offenders == []


def test_the_checker_sees_an_import_inside_a_function(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from calibrate.apps.cifar10 import runner\n")
    assert "calibrate.apps.cifar10.runner" in _imported_modules(f)
