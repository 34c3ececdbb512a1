"""Bounded memory and exactness at scale: row blocks, the temperature fit's bracket and
diagnostics, memory-mapped input, long fits decided by the size rule (never by a timing)."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import make_logits
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

import calibrate
from calibrate import metrics
from calibrate._core import blocks as _blocks
from calibrate._core import stats as _stats
from calibrate._core.binning import equal_width_edges
from calibrate.calibrators import _budget
from calibrate.calibrators.scaling import (
    TemperatureFitError,
    fit_temperature_nll,
    nll_derivative_sums,
)

ROOT = Path(__file__).resolve().parents[1]


def ref_nll(z, y, t):
    return -np.mean(log_softmax(z.astype(np.float64) / t, axis=1)[np.arange(len(y)), y])


def ref_temperature(z, y, lo, hi):
    r = minimize_scalar(lambda lt: ref_nll(z, y, np.exp(lt)), bounds=(np.log(lo), np.log(hi)), method="bounded",
                        options={"xatol": 1e-12})
    return float(np.exp(r.x))


# ------------------------------------------------------------------ row blocks
@pytest.mark.parametrize("k", [1, 3, 50_000])
def test_row_blocks_cover_every_row_once(k):
    n = 100_003 if k < 100 else 7
    seen = np.zeros(n, int)
    for s in _blocks.row_blocks(n, k, 8, 8000):
        assert (s.stop - s.start) * k <= max(1000, k)
        seen[s] += 1
    assert np.all(seen == 1)


def test_blockwise_metrics_equal_whole_array_references():
    z, y = make_logits(n=70_000, k=6, seed=3)  # several blocks
    z32 = z.astype(np.float32)
    lp = log_softmax(z32.astype(np.float64), axis=1)
    np.testing.assert_array_equal(metrics.log_softmax(z32), lp)
    p = np.exp(lp)
    assert metrics.nll_from_logits(z32, y) == pytest.approx(-lp[np.arange(len(y)), y].mean(), rel=1e-13)
    onehot = np.eye(6)[y]
    assert metrics.brier(p, y) == pytest.approx(((p - onehot) ** 2).sum(1).mean(), rel=1e-13)
    # class-wise sums against a loop over classes with np.histogram-free binning
    stat = _stats.ClasswiseBins(6, equal_width_edges(15))
    count, conf, corr = stat.sums(_stats.accumulate([stat], p, y)[0])
    for j in range(6):
        b = np.clip(np.ceil(p[:, j] * 15).astype(int) - 1, 0, 14)
        np.testing.assert_array_equal(count[j], np.bincount(b, minlength=15))
        np.testing.assert_allclose(conf[j], np.bincount(b, weights=p[:, j], minlength=15), rtol=1e-12)
        np.testing.assert_array_equal(corr[j], np.bincount(b, weights=(y == j), minlength=15))


def test_all_finite_finds_a_nan_in_any_block():
    a = np.zeros((50_000, 40), np.float32)
    assert _blocks.all_finite(a)
    a[49_999, 39] = np.nan
    assert not _blocks.all_finite(a)
    with pytest.raises(calibrate.InputError, match="finite"):
        metrics.nll_from_logits(a, np.zeros(50_000, int))


def test_evaluate_in_blocks_equals_all_metrics():
    from calibrate.backends.streaming import evaluate_in_blocks

    z, y = make_logits(n=9_000, k=5, seed=4)
    ref = metrics.all_metrics(metrics.softmax(z), y, 15, logits=z)
    got = evaluate_in_blocks(z, y, 15, block_bytes=8 * 4096)
    assert got.keys() == ref.keys()
    for key in ref:
        assert got[key] == pytest.approx(ref[key], rel=1e-12, abs=1e-15), key


# ------------------------------------------------------------------ temperature
@pytest.mark.parametrize("k", [7, 100])  # rows worked on transposed (k <= 64) and as rows
def test_one_pass_gives_the_nll_and_its_derivatives(k):
    z, y = make_logits(n=500, k=k, seed=5)
    a, h = 0.7, 1e-4
    s = nll_derivative_sums(z, y, a)
    f = lambda b: ref_nll(z, y, 1 / b)  # noqa: E731
    assert s[1] / s[0] == pytest.approx(f(a), rel=1e-13)
    assert s[2] / s[0] == pytest.approx((f(a + h) - f(a - h)) / (2 * h), rel=1e-6)
    assert s[3] / s[0] == pytest.approx((f(a + h) - 2 * f(a) + f(a - h)) / h**2, rel=1e-4)
    s2 = nll_derivative_sums(z, y, a, also_at=1.0)
    assert s2[7] / s2[0] == pytest.approx(ref_nll(z, y, 1.0), rel=1e-13)
    # the 4th and 5th derivatives: central differences of the exact 3rd and 4th
    d3 = lambda b: nll_derivative_sums(z, y, b)[4] / len(y)  # noqa: E731
    d4 = lambda b: nll_derivative_sums(z, y, b)[8] / len(y)  # noqa: E731
    assert s[8] / s[0] == pytest.approx((d3(a + h) - d3(a - h)) / (2 * h), rel=1e-6)
    assert s[9] / s[0] == pytest.approx((d4(a + h) - d4(a - h)) / (2 * h), rel=1e-5)


def test_the_float32_start_pass_is_close_to_the_float64_one():
    z, y = make_logits(n=3000, k=10, seed=15)
    s64, s32 = nll_derivative_sums(z, y, 0.6), nll_derivative_sums(z, y, 0.6, dtype=np.float32)
    np.testing.assert_allclose(s32[:5], s64[:5], rtol=1e-4)


@pytest.mark.parametrize("offset, passes", [(1e-3, 1), (0.5, 2)])
def test_one_pass_suffices_only_from_a_close_start(offset, passes):
    """A start 0.1 % off: the 5-term Taylor model's root is taken after one pass, exact to
    1e-9; 50 % off: more passes, same optimum."""
    from scipy.optimize import brentq
    from scipy.special import softmax

    z, y = make_logits(n=20_000, k=10, temperature=2.0, seed=16)
    zy = z[np.arange(len(y)), y]
    # the root of the exact gradient in a = 1/T (scipy softmax), not the minimiser of the NLL
    # value (flat at the optimum: only ~1e-8 relative)
    a_ref = brentq(lambda a: np.mean(np.sum(softmax(a * z, axis=1) * z, axis=1) - zy), 0.1, 2.0, xtol=1e-15,
                   rtol=1e-15)
    t_ref = 1.0 / a_ref
    t, info = fit_temperature_nll(z, y, start=t_ref * (1 + offset))
    assert info["n_iter"] == passes if passes == 1 else info["n_iter"] >= passes
    assert t == pytest.approx(t_ref, rel=1e-10)
    assert info["nll"] == pytest.approx(ref_nll(z, y, t), rel=1e-13)
    assert abs(info["grad_log_t"]) < 1e-10


def test_taylor_root_refuses_when_the_terms_do_not_shrink():
    from calibrate.calibrators.scaling import _taylor_root

    # f' = s - 0.1 + ...: a quadratic with the root at 0.1 (terms shrinking by 10x per order)
    s, _, g = _taylor_root(-0.1, 1.0, 0.0, 0.0, 0.0, 0.1, 1e-9) or (None, None, None)
    assert s is None  # a zero 3rd-order term: no decay to judge the remainder by, refused
    root = _taylor_root(-0.1, 1.0, 0.1, 0.01, 0.001, 0.1, 1e-6)
    assert root is not None and abs(root[2]) < 1e-15
    assert _taylor_root(-0.1, 1.0, 30.0, 900.0, 27000.0, 0.1, 1e-6) is None  # terms grow: refused


def test_diagnostics_come_from_the_fit_and_are_exact():
    z, y = make_logits(n=300_000, k=10, temperature=2.5, seed=6)
    z = z.astype(np.float32)
    cal = calibrate.TemperatureScaling().fit(z, y)
    t = cal.temperature_
    assert cal.nll_before_ == pytest.approx(ref_nll(z, y, 1.0), rel=1e-12)
    assert cal.nll_after_ == pytest.approx(ref_nll(z, y, t), rel=1e-12)
    h = 1e-5
    grad = (ref_nll(z, y, t * np.exp(h)) - ref_nll(z, y, t * np.exp(-h))) / (2 * h)
    assert abs(cal.grad_log_t_) < 1e-9 and abs(grad) < 1e-7
    assert cal.n_iter_ <= 3  # passes over all rows (the start comes from an eighth of them)
    assert t == pytest.approx(ref_temperature(z, y, 1.0, 5.0), rel=1e-7)


@pytest.mark.parametrize("scale", [1e4, 1e-4])
def test_bracket_widens_to_the_true_optimum_far_beyond_the_old_bounds(scale):
    z, y = make_logits(n=4000, k=10, temperature=1.0, seed=7)
    cal = calibrate.TemperatureScaling().fit(z * scale, y)
    assert not cal.at_bound_
    assert cal.temperature_ == pytest.approx(ref_temperature(z * scale, y, scale / 100, scale * 100), rel=1e-7)
    assert cal.temperature_ == pytest.approx(scale * calibrate.TemperatureScaling().fit(z, y).temperature_, rel=1e-7)


def test_explicit_bounds_stop_at_the_bound_with_a_warning():
    z, y = make_logits(n=2000, k=10, temperature=1.0, seed=8)
    with pytest.warns(RuntimeWarning, match="bound"):
        cal = calibrate.TemperatureScaling(bounds=(0.05, 100)).fit(z * 1e4, y)
    assert cal.at_bound_ and cal.temperature_ == pytest.approx(100)
    with pytest.warns(RuntimeWarning, match="bound"):
        cal = calibrate.TemperatureScaling(bounds=(0.05, 100)).fit(z * 1e-4, y)
    assert cal.at_bound_ and cal.temperature_ == pytest.approx(0.05)


def test_no_finite_optimum_is_refused_with_the_reason():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(500, 4))
    y = z.argmax(1)  # every label is the top logit: the NLL falls as T -> 0
    with pytest.raises(TemperatureFitError, match="T -> 0"):
        calibrate.TemperatureScaling().fit(z, y)
    y_bad = z.argmin(1)  # anti-informative: the optimum is T -> inf
    with pytest.raises(TemperatureFitError, match="T -> inf"):
        calibrate.TemperatureScaling().fit(z, y_bad)
    t, info = fit_temperature_nll(z, y, bounds=(0.01, 10))  # with bounds: stops at one
    assert info["at_bound"] and t == pytest.approx(0.01)


def test_float32_and_memory_mapped_input_are_not_copied(tmp_path):
    z, y = make_logits(n=20_000, k=30, temperature=2.0, seed=9)
    z32 = z.astype(np.float32)
    np.save(tmp_path / "z.npy", z32)
    mm = np.load(tmp_path / "z.npy", mmap_mode="r")
    a = calibrate.TemperatureScaling().fit(z32, y)
    b = calibrate.TemperatureScaling().fit(mm, y)
    assert a.temperature_ == b.temperature_
    np.testing.assert_array_equal(a.predict_proba(mm), a.predict_proba(z32))


MEMORY_SCRIPT = textwrap.dedent("""
    import json, sys, numpy as np
    def hwm():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM"):
                return int(line.split()[1]) * 1024
    import calibrate
    n, k = int(sys.argv[2]), int(sys.argv[3])
    rng = np.random.default_rng(0)
    z = np.lib.format.open_memmap(sys.argv[1], mode="w+", dtype=np.float32, shape=(n, k))
    y = np.empty(n, dtype=np.int64)
    for a in range(0, n, 200):
        zb = rng.standard_normal((min(200, n - a), k), dtype=np.float32) * 3
        z[a:a + 200] = zb
        yb = zb.argmax(1)  # the top class, or (40 %) a random one: a finite optimum exists
        flip = rng.random(yb.size) < 0.4
        yb[flip] = rng.integers(0, k, flip.sum())
        y[a:a + 200] = yb
    z.flush(); del z
    base = hwm()
    z = np.load(sys.argv[1], mmap_mode="r")
    cal = calibrate.TemperatureScaling().fit(z, y)
    print(json.dumps({"base": base, "peak": hwm(), "input": n * k * 4, "T": cal.temperature_}))
""")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")
def test_temperature_fit_peak_memory_is_input_plus_a_few_mib(tmp_path):
    """A memory-mapped 100 MB (n, k) float32 fit: the peak RSS grows by at most input + 64 MiB."""
    script = tmp_path / "mem.py"
    script.write_text(MEMORY_SCRIPT)
    r = subprocess.run([sys.executable, str(script), str(tmp_path / "z.npy"), "1000", "25000"], capture_output=True,
                       text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    assert m["peak"] - m["base"] <= m["input"] + 64 * 2**20, m


# ------------------------------------------------------------------ long fits
def test_the_size_rule_counts_units_from_n_k_and_method_only():
    n, k = 2000, 12
    iso = _budget.fit_size("isotonic", n, k)
    assert iso.units == pytest.approx(k * n * np.log2(n), rel=1e-15)
    assert _budget.fit_size("isotonic", n, 2).units == pytest.approx(n * np.log2(n), rel=1e-15)  # one map
    lo, hi = 1, 126  # n^(1/3) = 12.6: floor(12.6 / 10), ceil(10 x 12.6)
    assert calibrate.BBQ()._model_range(n) == (lo, hi)
    assert _budget.fit_size("bbq", n, k).units == pytest.approx(k * (hi - lo + 1) * n * np.log2(n), rel=1e-15)
    assert _budget.fit_size("matrix", n, k).units == 100 * n * k * k
    assert iso.seconds == pytest.approx(iso.units * 30e-9, rel=1e-15)
    for m in ("temperature", "vector", "platt", "histogram", "beta", "ets"):
        assert _budget.fit_size(m, n, k) is None


def test_a_long_fit_by_the_size_rule_crosses_the_limit_where_its_estimate_does():
    # matrix: 100 n k^2 units of 1 ns; 60 s is 6e10 units
    assert _budget.fit_size("matrix", 600, 1000).seconds == pytest.approx(60.0, rel=1e-12)
    assert not _budget.fit_size("matrix", 599, 1000).long
    assert _budget.fit_size("matrix", 601, 1000).long


@pytest.mark.parametrize("method", ["bbq", "isotonic", "matrix"])
def test_the_api_runs_a_long_fit_with_a_warning_and_a_progress_bar(monkeypatch, capsys, method):
    z, y = make_logits(n=600, k=12, seed=10)
    monkeypatch.setattr(_budget, "LONG_FIT_SECONDS", 0.0)
    with pytest.warns(_budget.LongFitWarning, match=r"size rule \(.* units at .* ns each = about .*\)"):
        cal = calibrate.get_calibrator(method).fit(z, y)
    assert "fit" in capsys.readouterr().err  # the bar, on stderr
    ref = calibrate.get_calibrator(method)
    monkeypatch.setattr(_budget, "LONG_FIT_SECONDS", 60.0)
    ref.fit(z, y)
    np.testing.assert_array_equal(cal.predict_proba(z), ref.predict_proba(z))


@pytest.mark.parametrize("method", ["bbq", "isotonic", "matrix"])
def test_a_short_fit_shows_no_warning_and_no_bar(capsys, recwarn, method):
    z, y = make_logits(n=600, k=12, seed=10)
    calibrate.get_calibrator(method).fit(z, y)
    assert not [w for w in recwarn if issubclass(w.category, _budget.LongFitWarning)]
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("method", ["bbq", "isotonic", "matrix"])
def test_the_decision_never_reads_a_clock(monkeypatch, recwarn, method):
    """A machine so loaded that every timing reads an hour: the same call fits, silently."""
    import time

    z, y = make_logits(n=600, k=12, seed=10)
    clock = iter(range(0, 10**9, 3600))
    monkeypatch.setattr(time, "perf_counter", lambda: float(next(clock)))
    monkeypatch.setattr(time, "monotonic", lambda: float(next(clock)))
    cal = calibrate.get_calibrator(method).fit(z, y)
    assert cal.predict_proba(z).shape == z.shape
    assert not [w for w in recwarn if issubclass(w.category, _budget.LongFitWarning)]


@pytest.mark.parametrize("method", ["bbq", "isotonic", "matrix"])
def test_allow_slow_is_deprecated_and_has_no_effect(method):
    z, y = make_logits(n=300, k=4, seed=12)
    with pytest.warns(DeprecationWarning, match="allow_slow=.* deprecated and has no effect"):
        old = calibrate.get_calibrator(method, allow_slow=True).fit(z, y)
    new = calibrate.get_calibrator(method).fit(z, y)
    np.testing.assert_array_equal(old.predict_proba(z), new.predict_proba(z))


@pytest.mark.parametrize("method", ["bbq", "isotonic", "matrix"])
def test_a_file_saved_with_allow_slow_false_still_loads(tmp_path, recwarn, method):
    z, y = make_logits(n=300, k=4, seed=12)
    cal = calibrate.get_calibrator(method).fit(z, y)
    d = cal.to_dict()
    assert d["params"]["allow_slow"] is None
    d["params"]["allow_slow"] = False  # what earlier versions wrote
    (tmp_path / "old.json").write_text(json.dumps(d))
    loaded = calibrate.load(tmp_path / "old.json")
    np.testing.assert_array_equal(loaded.predict_proba(z), cal.predict_proba(z))
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]


def _cli(*args):
    import contextlib
    import io

    from calibrate.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:
            code = e.code
    return code, err.getvalue()


def test_the_cli_refuses_a_long_fit_by_the_size_rule_and_names_the_flag(tmp_path, monkeypatch):
    z, y = make_logits(n=601, k=1000, seed=13)
    np.savez(tmp_path / "v.npz", logits=z.astype(np.float32), labels=y)
    code, err = _cli("fit", tmp_path / "v.npz", "--method", "matrix", "-o", tmp_path / "c.json")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert ("--method matrix on 601 x 1000: a long fit by the size rule (100 L-BFGS evaluations x n k^2 = "
            "6.01e+10 units at 1 ns each = about 60 s on a typical core, over the 60 s of a long fit)") in lines[0]
    assert lines[0].endswith("or pass --allow-slow to run it anyway")
    assert not (tmp_path / "c.json").exists()


def test_the_cli_runs_a_long_fit_with_allow_slow(tmp_path, monkeypatch):
    z, y = make_logits(n=300, k=5, seed=14)
    np.savez(tmp_path / "v.npz", logits=z, labels=y)
    monkeypatch.setattr(_budget, "LONG_FIT_SECONDS", 0.0)
    code, err = _cli("fit", tmp_path / "v.npz", "--method", "isotonic", "-o", tmp_path / "c.json")
    assert code == 2 and "--allow-slow" in err
    code, err = _cli("fit", tmp_path / "v.npz", "--method", "isotonic", "-o", tmp_path / "c.json", "--allow-slow")
    assert code == 0, err
    assert calibrate.load(tmp_path / "c.json").predict_proba(z).shape == z.shape


def test_cli_fit_and_evaluate_read_a_memory_mapped_npy(tmp_path):
    z, y = make_logits(n=3000, k=5, seed=11)
    np.save(tmp_path / "z.npy", z.astype(np.float32))
    np.save(tmp_path / "y.npy", y)
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-m", "calibrate.cli", "fit", str(tmp_path / "z.npy"), "--labels",
                        str(tmp_path / "y.npy"), "-o", str(tmp_path / "cal.json")], capture_output=True, text=True,
                       env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "calibrate.cli", "evaluate", str(tmp_path / "z.npy"), "--labels",
                        str(tmp_path / "y.npy"), "--calibrator", str(tmp_path / "cal.json"), "--json"],
                       capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    cal = calibrate.load(tmp_path / "cal.json")
    lp = cal.predict_log_proba(z.astype(np.float32))
    assert got["nll"] == pytest.approx(metrics.nll_from_logits(lp, y), rel=1e-12)
    assert got["ece"] == pytest.approx(metrics.ece(np.exp(lp), y), rel=1e-12)


def test_the_nll_at_t_1_in_the_same_pass_changes_no_other_sum():
    """Logits of magnitude 1e4: exp(zs) at T = 1 underflows where exp(a zs) does not; each
    exponent is floored on its own, so the derivatives at a are those of a pass without it."""
    z, y = make_logits(n=300, k=10, seed=3)
    z = z / np.abs(z).max() * 1e4
    a = 1e-3
    alone, both = nll_derivative_sums(z, y, a), nll_derivative_sums(z, y, a, also_at=1.0)
    np.testing.assert_allclose(both[1:5], alone[1:5], rtol=1e-14)
    assert both[7] / both[0] == pytest.approx(ref_nll(z, y, 1.0), rel=1e-12)
    assert alone[1] / alone[0] == pytest.approx(ref_nll(z, y, 1 / a), rel=1e-13)
