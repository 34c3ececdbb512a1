"""torch is optional: the saved-logits CLI and the numpy core run without it, and what
needs it says so in one line.

Two environments: a subprocess whose meta path refuses ``import torch`` (always run), and
a real virtual environment with ``pip install .`` (marked slow; needs a package index).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HINT = "this needs torch: pip install 'calibrate[torch]'"

# Run the CLI (argv after "--") in an interpreter where `import torch` fails as it does
# when torch is not installed.
BLOCKER = r"""
import importlib.abc, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "torchmetrics"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, NoTorch())
args = sys.argv[1:]
if args[:1] == ["--python"]:
    exec(args[1])
    sys.exit(0)
from calibrate.cli import main
code = main(args)
assert "torch" not in sys.modules, "torch was imported"
sys.exit(code)
"""


def run_without_torch(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("CALIBRATE_DEBUG", None)
    return subprocess.run([sys.executable, "-c", BLOCKER, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env, timeout=300)


def test_the_blocker_really_blocks_torch():
    r = run_without_torch("--python", "import torch")
    assert r.returncode != 0 and "No module named 'torch'" in r.stderr


def test_fit_evaluate_report_apply_run_without_torch(tmp_path):
    val, test = ROOT / "examples" / "val.npz", ROOT / "examples" / "test.npz"
    cal = tmp_path / "cal.json"
    r = run_without_torch("fit", val, "--method", "temperature", "-o", cal)
    assert r.returncode == 0, r.stderr
    assert cal.exists() and "NLL" in r.stdout
    r = run_without_torch("evaluate", test, "--calibrator", cal, "--json")
    assert r.returncode == 0, r.stderr
    assert '"ece_l2_debiased"' in r.stdout
    r = run_without_torch("apply", cal, test, "-o", tmp_path / "p.npz")
    assert r.returncode == 0, r.stderr
    r = run_without_torch("report", test, "--fit-on", val, "--methods", "temperature,isotonic",
                          "--resamples", "20", "-o", tmp_path / "r.html", "--json", tmp_path / "r.json")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "r.html").stat().st_size > 10_000 and (tmp_path / "r.json").exists()


def test_python_api_runs_without_torch():
    code = (
        "import numpy as np, calibrate, calibrate.report, calibrate.integrations.sklearn\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.datasets import load_wine\n"
        "X, y = load_wine(return_X_y=True)\n"
        "p = calibrate.CalibratedClassifier(LogisticRegression(max_iter=2000), cv=3).fit(X, y).predict_proba(X)\n"
        "z = np.log(p)\n"
        "for m in calibrate.calibrators.available_methods():\n"
        "    calibrate.get_calibrator(m).fit(z, y).predict_proba(z)\n"
        "calibrate.bootstrap_ci('ece', p, y, n_resamples=20)\n"
        "assert 'torch' not in sys.modules\n"
    )
    r = run_without_torch("--python", code)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("command", ["experiment", "pt"])
def test_what_needs_torch_says_so_in_one_line(command, tmp_path):
    if command == "experiment":
        r = run_without_torch("experiment", "--preset", "quick", "--data", tmp_path, "--out", tmp_path / "o")
    else:
        (tmp_path / "x.pt").write_bytes(b"not read")
        r = run_without_torch("evaluate", tmp_path / "x.pt")
    assert r.returncode == 2
    assert r.stderr.strip().endswith(HINT)
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


# ------------------------------------------------------------------ a real venv
def _index_reachable(python, dest) -> bool:
    try:
        r = subprocess.run([python, "-m", "pip", "download", "--no-deps", "--dest", str(dest), "-q",
                            "--only-binary=:all:", "six"], capture_output=True, timeout=60)
    except (subprocess.TimeoutExpired, OSError):
        return False
    return r.returncode == 0


@pytest.mark.slow
def test_pip_install_in_a_fresh_venv_does_not_install_torch(tmp_path):
    """pip install . (the numpy core) in a new venv; fit / evaluate / report there."""
    if not _index_reachable(sys.executable, tmp_path / "probe"):
        pytest.skip("pip cannot reach a package index")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "calibrate", src / "calibrate", ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=120)
    py = str(venv / "bin" / "python")
    r = subprocess.run([py, "-m", "pip", "install", "-q", str(src)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([py, "-c", "import importlib.util as u; print(u.find_spec('torch'))"],
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "None", "pip install . installed torch"
    exe = str(venv / "bin" / "calibrate")
    val, test = ROOT / "examples" / "val.npz", ROOT / "examples" / "test.npz"

    def cli(*args):
        return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=300, cwd=tmp_path)

    r = cli("fit", val, "--method", "platt", "-o", "cal.json")
    assert r.returncode == 0, r.stderr
    r = cli("evaluate", test, "--calibrator", "cal.json", "--json")
    assert r.returncode == 0 and "ece_l2_debiased" in r.stdout, r.stderr
    r = cli("report", test, "--calibrator", "cal.json", "--resamples", "20", "-o", "r.html")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "r.html").exists()
    r = cli("experiment", "--preset", "quick", "--data", tmp_path)
    assert r.returncode == 2 and r.stderr.strip().endswith(HINT) and "Traceback" not in r.stderr
