"""-inf logits are absent options (probability exactly 0) everywhere: metrics, every
calibrator's fit and predict, conformal sets, torch modules, the streaming accumulator,
CalibratedClassifier and the report. References are computed here, row by row over the
finite entries only, or from the same data with the absent column removed."""

import math
import warnings

import numpy as np
import pytest
from scipy.optimize import brentq, minimize_scalar

from calibrate import conformal, metrics
from calibrate._core.validation import InputError, check_gold_finite
from calibrate.backends.streaming import CalibrationAccumulator
from calibrate.calibrators.base import available_methods, get_calibrator
from calibrate.calibrators.scaling import TemperatureScaling
from calibrate.metrics.selective import aurc
from calibrate.metrics.summary import summary_in_blocks, summary_metrics

NEG = -np.inf


def masked_logits(n, k, frac=0.3, seed=0, column=None, singles=0):
    """(z (n, k) with -inf entries, y (n,), mask): ragged -inf entries (a fraction ``frac``,
    never the label), or the whole ``column``; ``singles`` rows keep only their label."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * 2.0
    y = rng.integers(0, k, n)
    if column is not None:
        y = np.where(y == column, (column + 1) % k, y)
    z[np.arange(n), y] += 2.0
    if column is not None:
        mask = np.zeros((n, k), dtype=bool)
        mask[:, column] = True
    else:
        mask = rng.random((n, k)) < frac
        mask[np.arange(n), y] = False
        mask[:singles] = True
        mask[np.arange(singles), y[:singles]] = False
    z[mask] = NEG
    return z, y, mask


def ref_probs(z):
    """Softmax over each row's finite entries, 0 elsewhere, by a loop over rows (math.exp)."""
    p = np.zeros(z.shape)
    for i, row in enumerate(z):
        idx = [j for j in range(row.size) if math.isfinite(row[j])]
        m = max(row[j] for j in idx)
        e = [math.exp(row[j] - m) for j in idx]
        s = math.fsum(e)
        for j, v in zip(idx, e):
            p[i, j] = v / s
    return p


# ------------------------------------------------------------------------- validation
def test_softmax_is_zero_at_neg_inf_and_renormalised_over_the_rest():
    z, _, mask = masked_logits(50, 6, seed=1)
    p = metrics.softmax(z)
    assert np.all(p[mask] == 0.0)
    np.testing.assert_allclose(p, ref_probs(z), rtol=1e-13, atol=1e-300)


def test_log_softmax_is_neg_inf_exactly_at_absent_options():
    z, _, mask = masked_logits(50, 6, seed=2)
    lp = metrics.log_softmax(z)
    assert np.all(np.isneginf(lp[mask])) and np.isfinite(lp[~mask]).all()


@pytest.mark.parametrize("bad, word", [(np.inf, "inf"), (np.nan, "nan")])
def test_pos_inf_and_nan_are_refused_naming_row_and_column(bad, word):
    z = np.zeros((4, 3))
    z[1, 0] = NEG
    z[2, 1] = bad
    with pytest.raises(InputError, match=rf"^logits: .* got {word} at row 2, column 1; fix or drop that row$"):
        metrics.softmax(z)


def test_a_row_with_every_logit_neg_inf_is_refused_naming_it():
    z = np.zeros((5, 3))
    z[3] = NEG
    with pytest.raises(InputError, match=r"every logit is -inf \(no option present\) in row 3"):
        metrics.softmax(z)


def test_check_gold_finite_names_the_first_rows_and_the_count():
    z = np.zeros((20, 3))
    y = np.zeros(20, dtype=int)
    bad = [2, 4, 5, 9, 11, 13, 17]
    z[bad, 0] = NEG
    with pytest.raises(InputError) as e:
        check_gold_finite(z, y)
    msg = str(e.value)
    assert "\n" not in msg and "in 7 rows: rows 2, 4, 5, 9, 11, ... (7 in all)" in msg


def test_check_gold_finite_names_row_ids_when_given():
    z = np.zeros((3, 2))
    z[1, 1] = NEG
    ids = np.array(["mmlu/0", "mmlu/1", "mmlu/2"])
    with pytest.raises(InputError, match=r"in 1 row: id 'mmlu/1';"):
        check_gold_finite(z, np.array([0, 1, 0]), row_ids=ids)


def test_check_gold_finite_passes_when_every_gold_logit_is_finite():
    z, y, _ = masked_logits(40, 4, seed=3)
    check_gold_finite(z, y)


def _fit_temperature(z, y):
    TemperatureScaling().fit(z, y)


def _fit_dirichlet(z, y):
    get_calibrator("dirichlet", reg_lambda=1e-3, reg_mu=1e-3).fit(z, y)


def _accumulate(z, y):
    CalibrationAccumulator(z.shape[1]).update(logits=z, labels=y)


@pytest.mark.parametrize("entry", [
    metrics.nll_from_logits, _fit_temperature, _fit_dirichlet, _accumulate,
    lambda z, y: conformal.APS(alpha=0.2).fit(z, y),
    lambda z, y: summary_in_blocks(z, y),
], ids=["nll_from_logits", "temperature", "dirichlet", "accumulator", "aps", "summary_in_blocks"])
def test_a_gold_option_at_neg_inf_is_refused_not_inf(entry):
    z, y, mask = masked_logits(60, 4, seed=4)
    rows = np.flatnonzero(mask.any(axis=1))[:2]
    y = y.copy()
    y[rows] = mask[rows].argmax(axis=1)
    with pytest.raises(InputError, match=rf"gold option's logit is -inf .* in 2 rows: rows {rows[0]}, {rows[1]};"):
        entry(z, y)


# ------------------------------------------------------------------------- metrics
def _cases():
    return [pytest.param(k, col, id=f"k{k}-{'column' if col is not None else 'ragged'}")
            for k in (2, 10, 1000) for col in ((1, None) if k > 2 else (None,))]


@pytest.mark.parametrize("k, column", _cases())
def test_nll_and_brier_equal_the_formulas_on_probabilities_with_zeros(k, column):
    n = 300 if k < 1000 else 60
    z, y, _ = masked_logits(n, k, column=column, seed=k, frac=0.3 if k > 2 else 0.1)
    p = ref_probs(z)
    nll = -math.fsum(math.log(p[i, y[i]]) for i in range(n)) / n
    brier = math.fsum(math.fsum((p[i, j] - (j == y[i])) ** 2 for j in range(k)) for i in range(n)) / n
    assert metrics.nll_from_logits(z, y) == pytest.approx(nll, rel=1e-12)
    assert metrics.brier(metrics.softmax(z), y) == pytest.approx(brier, rel=1e-12)


@pytest.mark.parametrize("k, column", _cases())
def test_binned_and_ranking_metrics_equal_those_of_probabilities_with_zeros(k, column):
    n = 300 if k < 1000 else 60
    z, y, _ = masked_logits(n, k, column=column, seed=k + 1, frac=0.3 if k > 2 else 0.1)
    p, q = metrics.softmax(z), ref_probs(z)
    for kw in ({}, {"binning": "mass"}, {"classwise": True}, {"norm": "l2"}):
        assert metrics.ece(p, y, 10, **kw) == pytest.approx(metrics.ece(q, y, 10, **kw), abs=1e-13)
    assert metrics.accuracy(p, y) == metrics.accuracy(q, y)
    conf, ok = q.max(axis=1), q.argmax(axis=1) == y
    assert aurc(p.max(axis=1), p.argmax(axis=1) == y) == pytest.approx(aurc(conf, ok), abs=1e-13)


@pytest.mark.parametrize("k", [2, 10, 1000])
def test_streaming_accumulator_on_logits_equals_it_on_probabilities_with_zeros(k):
    n = 200 if k < 1000 else 40
    z, y, _ = masked_logits(n, k, seed=k + 2, frac=0.3 if k > 2 else 0.1)
    a = CalibrationAccumulator(k).update(logits=z[: n // 2], labels=y[: n // 2])
    a.update(logits=z[n // 2:], labels=y[n // 2:])
    b = CalibrationAccumulator(k).update(probs=ref_probs(z), labels=y).compute()
    for key, v in a.compute().items():
        assert v == pytest.approx(b[key], rel=1e-11, abs=1e-13), key


def test_summary_in_blocks_on_logits_equals_summary_metrics_on_probabilities():
    z, y, _ = masked_logits(400, 5, seed=7)
    got = summary_in_blocks(z, y)
    ref = summary_metrics(ref_probs(z), y)
    for key in ("ece", "ece_mass", "brier", "accuracy", "aurc"):
        assert got[key] == pytest.approx(ref[key], rel=1e-11, abs=1e-13), key
    assert np.isfinite(got["nll"])


# ------------------------------------------------------------------------- temperature
def _ragged_reference_temperature(z, y):
    """1/a* where the NLL over each row's finite entries has zero derivative in a = 1/T
    (brentq on the gradient summed row by row); and a bounded scalar minimisation."""
    rows = [(r[np.isfinite(r)] - r[np.isfinite(r)].max(), r[yy] - r[np.isfinite(r)].max()) for r, yy in zip(z, y)]

    def nll(a):
        return math.fsum(math.log(np.exp(a * r).sum()) - a * zy for r, zy in rows) / len(rows)

    def grad(a):
        tot = 0.0
        for r, zy in rows:
            e = np.exp(a * r)
            tot += float((e * r).sum() / e.sum()) - zy
        return tot / len(rows)

    a = brentq(grad, 1e-3, 1e3, xtol=1e-16, rtol=4 * np.finfo(float).eps)
    b = minimize_scalar(nll, bounds=(1e-3, 1e3), method="bounded", options={"xatol": 1e-10}).x
    return 1.0 / a, 1.0 / b


@pytest.mark.parametrize("n, k", [(300, 5), (1200, 5), (600, 100)], ids=["small", "subsampled-start", "long-rows"])
def test_temperature_fit_equals_the_fit_on_finite_entries_only(n, k):
    z, y, _ = masked_logits(n, k, seed=n + k, frac=0.4, singles=3)
    t_root, t_min = _ragged_reference_temperature(z, y)
    t = TemperatureScaling().fit(z, y).temperature_
    assert t == pytest.approx(t_root, rel=1e-10)
    assert t == pytest.approx(t_min, rel=1e-6)


def test_temperature_fit_with_a_neg_inf_column_equals_the_fit_without_it():
    z, y, _ = masked_logits(2000, 6, column=2, seed=11)
    keep = [0, 1, 3, 4, 5]
    y3 = np.searchsorted(keep, y)
    a = TemperatureScaling().fit(z, y)
    b = TemperatureScaling().fit(z[:, keep], y3)
    assert a.temperature_ == pytest.approx(b.temperature_, rel=1e-10)
    assert a.nll_before_ == pytest.approx(b.nll_before_, rel=1e-12)
    assert a.nll_after_ == pytest.approx(b.nll_after_, rel=1e-12)


def test_temperature_nll_before_and_after_equal_the_row_sums():
    z, y, _ = masked_logits(500, 4, seed=12)
    cal = TemperatureScaling().fit(z, y)
    for t, got in ((1.0, cal.nll_before_), (cal.temperature_, cal.nll_after_)):
        p = ref_probs(z / t)
        assert got == pytest.approx(-np.mean(np.log(p[np.arange(len(y)), y])), rel=1e-11)


def test_float32_logits_with_neg_inf_fit_as_float64_ones_do():
    z, y, _ = masked_logits(3000, 8, seed=13)
    z32 = z.astype(np.float32)
    t32 = TemperatureScaling().fit(z32, y).temperature_
    t64 = TemperatureScaling().fit(z32.astype(np.float64), y).temperature_
    assert t32 == pytest.approx(t64, rel=1e-10)


# ------------------------------------------------------------------------- calibrators
METHODS = sorted(available_methods())


def _make(method, k=None):
    kw = {"reg_lambda": 1e-2, "reg_mu": 1e-2} if method == "dirichlet" else {}
    return get_calibrator(method, **kw)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("k", [2, 5])
def test_every_calibrator_keeps_absent_options_at_probability_zero(method, k):
    z, y, mask = masked_logits(400, k, seed=20 + k, frac=0.25 if k > 2 else 0.1, singles=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = _make(method).fit(z, y)
    p = cal.predict_proba(z)
    assert np.all(p[mask] == 0.0)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_a_row_with_one_present_option_gives_it_probability_one(method):
    z, y, mask = masked_logits(300, 4, seed=30, frac=0.2, singles=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = _make(method).fit(z, y).predict_proba(z[:6])
    np.testing.assert_array_equal(p, (~mask[:6]).astype(float))


@pytest.mark.parametrize("method", METHODS)
def test_a_fit_with_an_absent_column_equals_the_fit_without_the_column(method):
    """Column 3 of 5 is -inf on every row: the calibrator fitted on the 5 columns predicts
    on the other 4 what the one fitted on those 4 columns does (Dirichlet's penalties
    are per k (k - 1) and k: scaled so that the 4-column problem is the same)."""
    z, y, _ = masked_logits(600, 5, column=3, seed=40)
    keep = [0, 1, 2, 4]
    y4 = np.searchsorted(keep, y)
    if method == "dirichlet":
        a = get_calibrator("dirichlet", reg_lambda=2e-2, reg_mu=1e-2)
        b = get_calibrator("dirichlet", reg_lambda=2e-2 * 12 / 20, reg_mu=1e-2 * 4 / 5)
    else:
        a, b = _make(method), _make(method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pa = a.fit(z, y).predict_proba(z)
        pb = b.fit(z[:, keep], y4).predict_proba(z[:, keep])
    assert np.all(pa[:, 3] == 0.0)
    tol = 1e-12 if method in ("temperature", "isotonic", "histogram", "bbq") else 2e-6  # iterative fits: their tolerance
    np.testing.assert_allclose(pa[:, keep], pb, atol=tol)


@pytest.mark.parametrize("method", METHODS)
def test_torch_module_matches_predict_proba_with_absent_options(method):
    """On rows other than the fitting rows (BBQ's equal-mass edges are fitting values: there
    a 1-ulp difference between numpy's and torch's softmax may change the bin)."""
    torch = pytest.importorskip("torch")
    z, y, _ = masked_logits(300, 4, seed=50, frac=0.25, singles=3)
    z2, _, mask = masked_logits(200, 4, seed=51, frac=0.25, singles=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = _make(method).fit(z, y)
    q = torch.softmax(cal.to_torch()(torch.tensor(z2)), dim=1).numpy()
    assert np.all(q[mask] == 0.0)
    np.testing.assert_allclose(q, cal.predict_proba(z2), atol=1e-12)


def test_sklearn_calibrated_classifier_keeps_an_absent_class_absent():
    from sklearn.base import BaseEstimator, ClassifierMixin

    from calibrate.integrations.sklearn import CalibratedClassifier

    class Fixed(ClassifierMixin, BaseEstimator):
        """decision_function = the row's logits, held in X[:, :4]."""

        def fit(self, X, y):
            self.classes_ = np.arange(4)
            return self

        def decision_function(self, X):
            return np.asarray(X)[:, :4]

    z, y, mask = masked_logits(400, 4, seed=60, frac=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = CalibratedClassifier(Fixed(), method="vector", cv=2).fit(z, y)
    p = clf.predict_proba(z)
    assert np.all(p[mask] == 0.0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)


# ------------------------------------------------------------------------- conformal
def _zero_prob_logits(z):
    """z with each -inf replaced by (row max - 1e4): its float64 softmax is exactly 0 there."""
    out = z.copy()
    m = np.where(np.isfinite(z), z, -np.inf).max(axis=1, keepdims=True)
    out[np.isneginf(z)] = np.broadcast_to(m - 1e4, z.shape)[np.isneginf(z)]
    return out


@pytest.mark.parametrize("klass", [conformal.LAC, conformal.APS, conformal.RAPS])
@pytest.mark.parametrize("k", [2, 10, 1000])
def test_conformal_sets_equal_those_of_probabilities_with_zeros(klass, k):
    n = 400 if k < 1000 else 80
    z, y, mask = masked_logits(n, k, seed=70 + k, frac=0.3 if k > 2 else 0.1)
    w = _zero_prob_logits(z)
    assert np.all(metrics.softmax(w)[mask] == 0.0)
    half = n // 2
    a = klass(alpha=0.2).fit(z[:half], y[:half])
    b = klass(alpha=0.2).fit(w[:half], y[:half])
    assert a.quantile_ == b.quantile_
    sa, sb = a.predict_sets(z[half:]), b.predict_sets(w[half:])
    np.testing.assert_array_equal(sa, sb)
    assert conformal.marginal_coverage(sa, y[half:]) == conformal.marginal_coverage(sb, y[half:])
    assert conformal.mean_set_size(sa) == conformal.mean_set_size(sb)


@pytest.mark.parametrize("klass", [conformal.LAC, conformal.APS, conformal.RAPS])
def test_absent_options_are_never_in_a_conformal_set(klass):
    z, y, mask = masked_logits(30, 4, seed=80)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cp = klass(alpha=0.01).fit(z, y)  # too few rows: q = +inf, full sets
    assert math.isinf(cp.quantile_)
    np.testing.assert_array_equal(cp.predict_sets(z), ~mask)


# ------------------------------------------------------------------------- report
def test_report_numbers_on_logits_with_neg_inf_are_those_of_probabilities_with_zeros():
    from calibrate.report.html import calibration_report_sections

    z, y, _ = masked_logits(500, 4, seed=90)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = TemperatureScaling().fit(z[:250], y[:250])
        _, _, data = calibration_report_sections(z[250:], y[250:], {"temperature": cal}, n_resamples=20,
                                                 conformal_alpha=0.2)
    m = data["metrics"]
    q = ref_probs(z[250:])
    assert m["uncalibrated"]["ece"]["estimate"] == pytest.approx(metrics.ece(q, y[250:]), abs=1e-12)
    assert m["uncalibrated"]["brier"]["estimate"] == pytest.approx(metrics.brier(q, y[250:]), rel=1e-12)
    nll = -np.mean(np.log(q[np.arange(250), y[250:]]))
    assert m["uncalibrated"]["nll"]["estimate"] == pytest.approx(nll, rel=1e-12)
    assert np.isfinite(m["temperature"]["nll"]["estimate"])


# ------------------------------------------------------------------------- command line
def test_cli_fits_applies_and_reports_logits_with_neg_inf(tmp_path):
    from conftest import run_cli

    z, y, _ = masked_logits(400, 4, seed=100)
    np.savez(tmp_path / "val.npz", logits=z[:200], labels=y[:200])
    np.savez(tmp_path / "test.npz", logits=z[200:], labels=y[200:])
    assert run_cli("fit", tmp_path / "val.npz", "-o", tmp_path / "cal.json")[0] == 0
    assert run_cli("apply", tmp_path / "cal.json", tmp_path / "test.npz", "-o", tmp_path / "out.npz")[0] == 0
    p = np.load(tmp_path / "out.npz")["probs"]
    assert np.all(p[np.isneginf(z[200:])] == 0.0)
    code, _, err = run_cli("report", tmp_path / "test.npz", "--calibrator", tmp_path / "cal.json",
                           "-o", tmp_path / "r.html", "--resamples", "20")
    assert code == 0, err


def test_cli_refuses_a_gold_option_at_neg_inf_in_one_line(tmp_path):
    from conftest import run_cli

    z, y, mask = masked_logits(50, 4, seed=101)
    i = int(np.flatnonzero(mask.any(axis=1))[0])
    y[i] = int(mask[i].argmax())
    np.savez(tmp_path / "t.npz", logits=z, labels=y)
    code, _, err = run_cli("evaluate", tmp_path / "t.npz")
    assert code != 0 and err.count("\n") == 1 and f"in 1 row: row {i};" in err


def test_dask_temperature_fit_and_ece_with_neg_inf_equal_numpy():
    da = pytest.importorskip("dask.array")
    z, y, _ = masked_logits(1200, 5, seed=110)
    zd, yd = da.from_array(z, chunks=(300, 5)), da.from_array(y, chunks=300)
    assert TemperatureScaling().fit(zd, yd).temperature_ == pytest.approx(
        TemperatureScaling().fit(z, y).temperature_, rel=1e-10)
    assert metrics.ece(metrics.softmax(zd), yd) == pytest.approx(metrics.ece(ref_probs(z), y), abs=1e-12)
