"""Bootstrap intervals: the vectorised resampling equals a loop over resamples, exactly."""

import numpy as np
import pytest
from conftest import make_logits

from calibrate import bootstrap_ci, paired_bootstrap_ci, softmax
from calibrate.metrics import calibration as metrics
from calibrate.resampling.bootstrap import _count_chunks, _evaluator, bootstrap_distribution

NAMES = ["accuracy", "nll", "brier", "ece", "ece_mass", "ece_l2", "ece_l2_debiased", "mce", "classwise_ece"]


@pytest.fixture(scope="module")
def pred():
    z, y = make_logits(n=1500, k=6, temperature=2.0, seed=4)
    return softmax(z), y


@pytest.mark.parametrize("name", NAMES)
def test_vectorised_resamples_equal_a_loop(pred, name):
    p, y = pred
    fn, kw, values = _evaluator(name, p, y, {})
    w = next(_count_chunks(len(y), 8, np.random.default_rng(0)))
    loop = []
    for wi in w:
        take = np.repeat(np.arange(len(y)), wi.astype(int))
        if kw.get("binning") == "mass":  # edges of the full sample (the documented conditioning)
            continue
        loop.append(fn(p[take], y[take], **kw))
    if loop:
        np.testing.assert_allclose(values(w), loop, rtol=1e-12, atol=1e-14)


def test_a_resample_is_a_multiset_of_the_rows(pred):
    w = next(_count_chunks(1000, 50, np.random.default_rng(0)))
    assert w.shape == (50, 1000) and np.all(w.sum(1) == 1000) and np.all(w >= 0)


def test_interval_unpacks_and_contains_the_estimate_for_accuracy(pred):
    p, y = pred
    ci = bootstrap_ci(metrics.accuracy, p, y, n_resamples=500)
    low, high = ci
    assert low == ci.low and high == ci.high
    assert low <= ci.estimate <= high
    assert ci.estimate == metrics.accuracy(p, y)


def test_interval_width_matches_binomial_theory_for_accuracy(pred):
    p, y = pred
    ci = bootstrap_ci("accuracy", p, y, n_resamples=4000)
    a = ci.estimate
    se = np.sqrt(a * (1 - a) / len(y))
    assert (ci.high - ci.low) == pytest.approx(2 * 1.96 * se, rel=0.1)


def test_same_seed_same_interval_other_seed_other(pred):
    p, y = pred
    a = bootstrap_ci("ece", p, y, seed=1)
    assert a == bootstrap_ci("ece", p, y, seed=1)
    assert a != bootstrap_ci("ece", p, y, seed=2)


def test_custom_callable_falls_back_to_a_loop(pred):
    p, y = pred

    def top1_error(probs, labels):
        return 1 - metrics.accuracy(probs, labels)

    ci = bootstrap_ci(top1_error, p, y, n_resamples=100, seed=3)
    ref = bootstrap_ci("accuracy", p, y, n_resamples=100, seed=3)
    assert ci.low == pytest.approx(1 - ref.high) and ci.high == pytest.approx(1 - ref.low)


def test_paired_interval_of_identical_predictions_is_zero(pred):
    p, y = pred
    d = paired_bootstrap_ci("ece", p, p, y, n_resamples=200)
    assert d.low == d.high == d.estimate == 0.0


def test_paired_interval_detects_a_real_improvement():
    z, y = make_logits(n=3000, k=5, temperature=3.0, seed=5)
    d = paired_bootstrap_ci("nll", softmax(z), softmax(z / 3.0), y)
    assert d.high < 0 and d.p_value <= 0.01
    dist_a = bootstrap_distribution("nll", softmax(z), y, 300)
    dist_b = bootstrap_distribution("nll", softmax(z / 3.0), y, 300)
    # pairing removes the shared noise: the paired spread is narrower than the unpaired one
    assert (d.high - d.low) < np.quantile(dist_a - dist_b[::-1], 0.975) - np.quantile(dist_a - dist_b[::-1], 0.025)


def test_nll_uses_exact_log_probs_when_given():
    z = np.array([[800.0, 0.0], [0.0, 1.0]])
    y = np.array([1, 1])
    lp = metrics.log_softmax(z)
    ci = bootstrap_ci("nll", np.exp(lp), y, n_resamples=50, log_probs=lp)
    assert ci.estimate == pytest.approx(metrics.nll_from_logits(z, y))


def test_bad_arguments(pred):
    p, y = pred
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci("ece", p, y, confidence_level=1.5)
    with pytest.raises(ValueError, match="metric"):
        bootstrap_ci("nope", p, y)


# ------------------------------------------------------------------ BCa, schemes, one set of weights
@pytest.mark.parametrize("name, fn", [
    ("ece", lambda p, y: metrics.ece(p, y)),
    ("ece_l2", lambda p, y: metrics.ece(p, y, norm="l2")),
    ("classwise_ece", lambda p, y: metrics.classwise_ece(p, y)),
    ("nll", lambda p, y: metrics.nll(p, y)),
    ("brier", lambda p, y: metrics.brier(p, y)),
])
@pytest.mark.parametrize("method", ["BCa", "percentile", "basic"])
def test_intervals_equal_scipy_bootstrap_on_the_same_resamples(name, fn, method):
    """scipy.stats.bootstrap resamples rows with rng.integers(0, n, (R, n)); ours too (scheme
    "multinomial"), so with one seed both see the same resamples; scipy's BCa jackknife
    recomputes the metric n times (brute force), ours subtracts one row of sufficient sums."""
    st = pytest.importorskip("scipy.stats")
    z, y = make_logits(n=160, k=4, temperature=1.0, seed=3)
    p = softmax(z)
    ref = st.bootstrap((np.arange(len(y)),), lambda i: fn(p[i], y[i]), vectorized=False, n_resamples=999,
                       method=method, rng=np.random.default_rng(7)).confidence_interval
    ours = bootstrap_ci(name, p, y, n_resamples=999, seed=7, method=method.lower(), scheme="multinomial")
    assert ours.low == pytest.approx(ref.low, rel=1e-12, abs=1e-15)
    assert ours.high == pytest.approx(ref.high, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("name", ["ece", "ece_mass", "mce", "classwise_ece", "accuracy"])
def test_leave_one_out_from_sufficient_statistics_equals_recomputing(pred, name):
    from calibrate.resampling.bootstrap import _Engine, _resolve, _Source, _Spec

    p, y = pred[0][:80], pred[1][:80]
    fn, kw = _resolve(name, {})
    spec = _Spec.of(fn, kw)
    eng = _Engine([_Source.from_probs(p)], y, [[spec]], 10, 0, "multinomial", True)
    keep = np.ones(80, bool)
    brute = []
    for i in range(80):
        keep[i] = False
        if kw.get("binning") == "mass":  # edges of the full sample (the documented conditioning)
            from calibrate._core import binning as _binning
            from calibrate._core import stats as _stats

            c = p.max(1)
            e = _binning.equal_mass_edges(c, 15)
            ok = (p.argmax(1) == y)[keep]
            stat = _stats.Bins(e)
            brute.append(stat.finish(stat.update_values(stat.zeros(), c[keep], ok)))
        else:
            brute.append(fn(p[keep], y[keep], **kw))
        keep[i] = True
    np.testing.assert_allclose(eng.jackknife(0, 0), brute, rtol=1e-12, atol=1e-15)


def test_bca_moves_the_interval_of_a_biased_ece_down_and_the_report_contains_the_estimate():
    """Labels drawn from the predictions (perfect calibration): the plug-in ECE is biased up,
    most resamples lie above it, so the percentile interval can miss it. BCa shifts the
    interval down (z0 < 0); when nearly every resample lies above (z0 very negative) BCa
    over-corrects and can miss it from below, so the report widens such an interval to
    its estimate (marked "widened"). Both misses are checked to occur here."""
    from calibrate.resampling.tables import evaluate_with_ci

    pct_missed = bca_missed = 0
    for seed in range(8):
        rng = np.random.default_rng(seed)
        p = softmax(rng.normal(size=(800, 3)) * 1.5)
        y = (p.cumsum(1) > rng.random((800, 1))).argmax(1)
        pc = bootstrap_ci("ece", p, y, method="percentile", seed=seed)
        bca = bootstrap_ci("ece", p, y, method="bca", seed=seed)
        assert bca.low < pc.low and bca.high < pc.high
        pct_missed += not (pc.low <= pc.estimate <= pc.high)
        bca_missed += not (bca.low <= bca.estimate <= bca.high)
        rep = evaluate_with_ci(np.log(p), y, n_resamples=1000, seed=seed)
        for key, c in rep.items():
            assert c["low"] <= c["estimate"] <= c["high"], key
    assert pct_missed >= 1 and pct_missed >= bca_missed


def test_poisson_weights_follow_poisson_1():
    st = pytest.importorskip("scipy.stats")
    from calibrate.resampling.bootstrap import poisson_weights

    w = poisson_weights(np.random.default_rng(0), (2_000, 1_000)).ravel().astype(int)
    obs = np.bincount(np.minimum(w, 6), minlength=7)
    pmf = st.poisson.pmf(np.arange(6), 1.0)
    exp = np.append(pmf, 1 - pmf.sum()) * w.size
    assert st.chisquare(obs, exp).pvalue > 1e-3
    assert w.mean() == pytest.approx(1.0, abs=0.005) and w.var() == pytest.approx(1.0, abs=0.01)


def test_poisson_scheme_intervals_agree_with_multinomial(pred):
    p, y = pred
    a = bootstrap_ci("accuracy", p, y, n_resamples=4000, scheme="poisson")
    b = bootstrap_ci("accuracy", p, y, n_resamples=4000, scheme="multinomial")
    assert a.scheme == "poisson" and b.scheme == "multinomial"
    assert a.high - a.low == pytest.approx(b.high - b.low, rel=0.1)


@pytest.mark.parametrize("scheme", ["multinomial", "poisson"])
def test_bootstrap_many_uses_one_set_of_weights(pred, scheme):
    from calibrate.resampling.bootstrap import bootstrap_many

    p, y = pred
    lp_a, lp_b = np.log(p), metrics.log_softmax(np.log(p) / 1.5)
    keys = ["ece", "nll", "classwise_ece", "accuracy"]
    table, paired, info = bootstrap_many({"a": lp_a, "b": lp_b}, y, keys, 300, seed=4, reference="a",
                                         method="percentile", scheme=scheme)
    assert info["scheme"] == scheme and info["n_resamples"] == 300
    for key in keys:  # the same weights as the one-metric functions with the same seed
        one = bootstrap_ci(key, p, y, n_resamples=300, seed=4, scheme=scheme, log_probs=lp_a)
        assert (table["a"][key].low, table["a"][key].high) == pytest.approx((one.low, one.high), rel=1e-12)
        d = paired_bootstrap_ci(key, p, np.exp(lp_b), y, n_resamples=300, seed=4, scheme=scheme,
                                log_probs_a=lp_a, log_probs_b=lp_b)
        assert (paired["b"][key].low, paired["b"][key].high) == pytest.approx((d.low, d.high), rel=1e-12, abs=1e-15)
        assert paired["b"][key].p_value == d.p_value


def test_grouped_jackknife_beyond_the_exact_limit_gives_a_close_bca(pred, monkeypatch):
    from calibrate.resampling import bootstrap

    p, y = pred
    exact = bootstrap_ci("ece", p, y, method="bca", seed=2)
    monkeypatch.setattr(bootstrap, "EXACT_JACKKNIFE_MAX_ROWS", 0)
    monkeypatch.setattr(bootstrap, "JACKKNIFE_GROUPS", 300)
    grouped = bootstrap_ci("ece", p, y, method="bca", seed=2)
    assert grouped.low == pytest.approx(exact.low, rel=0.05) and grouped.high == pytest.approx(exact.high, rel=0.05)


def test_worker_threads_change_no_number_and_the_jackknife_is_gathered_in_the_same_pass(pred, monkeypatch):
    """Poisson weights drawn in block order and block sums added in block order: 1 or 3
    threads give identical intervals; the group jackknife gathered while resampling equals
    the one from its own pass."""
    from calibrate.resampling import bootstrap
    from calibrate.resampling.bootstrap import bootstrap_many

    p, y = pred
    lp_a, lp_b = np.log(p), metrics.log_softmax(np.log(p) / 1.5)
    monkeypatch.setattr(bootstrap, "_POISSON_BLOCK_BYTES", 8 * 200 * 50)  # many blocks of 50 rows
    monkeypatch.setattr(bootstrap, "EXACT_JACKKNIFE_MAX_ROWS", 0)
    monkeypatch.setattr(bootstrap, "JACKKNIFE_GROUPS", 100)
    out = {}
    for threads in ("1", "3"):
        monkeypatch.setenv("CALIBRATE_THREADS", threads)
        out[threads] = bootstrap_many({"a": lp_a, "b": lp_b}, y, ["ece", "nll", "classwise_ece"], 200, seed=1,
                                      reference="a", method="bca", scheme="poisson")
    for name in ("a", "b"):
        for key in ("ece", "nll", "classwise_ece"):
            one, three = out["1"][0][name][key], out["3"][0][name][key]
            assert (one.low, one.high) == (three.low, three.high)
    eng = bootstrap._Engine([bootstrap._Source.from_probs(p, lp_a)], y, [[bootstrap._Spec("nll")]], 50, 0,
                            "poisson", True)
    gathered = eng._group_sums.copy()
    eng._group_sums = None
    separate = eng._jackknife()
    np.testing.assert_allclose(eng._jack[(0, 0)], separate[(0, 0)], rtol=1e-12)
    assert gathered.shape == (100, eng.design.width)
