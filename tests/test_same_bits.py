"""The same inputs give the same bits whether or not torch is imported in the process."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import sys
    if sys.argv[1] == "torch":
        import torch  # noqa: F401
    import numpy as np
    import calibrate
    from calibrate import metrics

    rng = np.random.default_rng(0)
    n, k = 200_000, 10  # 2,000,000 values: large enough for any size-gated kernel
    z = rng.normal(size=(n, k)) * 3.0
    y = rng.integers(0, k, n)
    z[np.arange(n), y] += 2.0
    p = metrics.softmax(z)
    wide = rng.normal(size=(2000, 500)) * 2.0  # long rows: the row-wise path of the fit
    wide[np.arange(2000), y[:2000] % 500] += 3.0
    out = [
        metrics.ece(p, y),
        metrics.ece(p, y, classwise=True),
        metrics.nll_from_logits(z, y),
        metrics.nll(p, y),
        calibrate.TemperatureScaling().fit(z.astype(np.float32), y).temperature_,
        calibrate.TemperatureScaling().fit(z, y).temperature_,
        calibrate.TemperatureScaling().fit(wide, y[:2000] % 500).temperature_,
    ]
    iv = calibrate.bootstrap_ci("ece", p[:20_000], y[:20_000], n_resamples=200, seed=3)
    out += [iv.low, iv.high, iv.estimate]
    print(np.array(out, dtype=np.float64).tobytes().hex())
    print(p[:1000].tobytes().hex()[:4000])
""")


def _run(mode, tmp_path):
    script = tmp_path / "bits.py"
    script.write_text(SCRIPT)
    r = subprocess.run([sys.executable, str(script), mode], capture_output=True, text=True, cwd=ROOT, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_metrics_fit_and_interval_have_the_same_bits_with_torch_imported(tmp_path):
    pytest.importorskip("torch")
    assert _run("torch", tmp_path) == _run("numpy", tmp_path)
