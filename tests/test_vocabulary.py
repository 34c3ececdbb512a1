"""One vocabulary across the public API (n_resamples, seed, confidence_level, Interval),
the old names working for one release with a DeprecationWarning, and one n_resamples check."""

import warnings

import numpy as np
import pytest

from calibrate import InputError
from calibrate._core import blocks
from calibrate._core.validation import MAX_RESAMPLES, renamed_keywords
from calibrate.calibrators import base
from calibrate.metrics import decomposition, ood, selective, smooth
from calibrate.resampling import Interval, PairedInterval, bootstrap_ci, paired_bootstrap_ci
from calibrate.resampling import detection as detection_rs
from calibrate.resampling import selective as selective_rs
from calibrate.resampling import smooth as smooth_rs
from calibrate.resampling.bootstrap import bootstrap_many


@pytest.fixture(scope="module")
def pred():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(300, 4)) * 2
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    y = (p.cumsum(1) > rng.random((300, 1))).argmax(1)
    return p, y


def _conf_ok(p, y):
    return p.max(1), p.argmax(1) == y


# ------------------------------------------------------------------ the helper
def test_renamed_keywords_passes_the_old_name_on_with_a_warning():
    @renamed_keywords(old="new")
    def f(a, new=1):
        return a + new

    with pytest.warns(DeprecationWarning, match="'old' is now 'new'"):
        assert f(1, old=5) == 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert f(1, new=5) == 6
    with pytest.raises(TypeError, match="both 'old'"):
        f(1, old=2, new=3)


def test_renamed_keywords_keeps_the_signature():
    import inspect

    assert list(inspect.signature(bootstrap_ci).parameters)[:6] == [
        "metric", "probs", "labels", "n_resamples", "confidence_level", "seed"]


# ------------------------------------------------------------------ renamed keywords
def test_bootstrap_ci_old_confidence_keyword(pred):
    p, y = pred
    new = bootstrap_ci("ece", p, y, n_resamples=50, confidence_level=0.9)
    with pytest.warns(DeprecationWarning, match="'confidence' is now 'confidence_level'"):
        old = bootstrap_ci("ece", p, y, n_resamples=50, confidence=0.9)
    assert old == new and new.confidence_level == 0.9


def test_paired_and_many_take_confidence_level(pred):
    p, y = pred
    q = np.sqrt(p)
    q /= q.sum(1, keepdims=True)
    a = paired_bootstrap_ci("brier", p, q, y, n_resamples=40, confidence_level=0.8)
    with pytest.warns(DeprecationWarning):
        b = paired_bootstrap_ci("brier", p, q, y, n_resamples=40, confidence=0.8)
    assert isinstance(a, PairedInterval) and a == b and a.confidence_level == 0.8
    table, _, info = bootstrap_many({"p": np.log(p)}, y, ["ece"], n_resamples=40, confidence_level=0.8)
    assert table["p"]["ece"].confidence_level == 0.8 and info["confidence"] == 0.8


def test_smooth_reliability_old_names(pred):
    p, y = pred
    new = smooth.smooth_reliability(p, y, n_resamples=20, confidence_level=0.8, seed=1)
    with pytest.warns(DeprecationWarning, match="'n_bootstrap' is now 'n_resamples'"):
        old = smooth.smooth_reliability(p, y, n_bootstrap=20, confidence_level=0.8, seed=1)
    np.testing.assert_array_equal(old.lower, new.lower)
    with pytest.warns(DeprecationWarning, match="'level' is now 'confidence_level'"):
        old = smooth.smooth_reliability(p, y, n_resamples=20, level=0.8, seed=1)
    np.testing.assert_array_equal(old.upper, new.upper)


def test_smooth_band_old_level(pred):
    p, y = pred
    r = smooth.smooth_reliability(p, y)
    new = smooth.smooth_reliability_band(p, y, r.sigma, r.x, n_resamples=30, confidence_level=0.8)
    with pytest.warns(DeprecationWarning):
        old = smooth.smooth_reliability_band(p, y, r.sigma, r.x, n_resamples=30, level=0.8)
    np.testing.assert_array_equal(old[0], new[0])


def test_margins_have_distinct_names_and_the_old_ones_warn(pred):
    p, _ = pred
    z = np.log(p)
    with pytest.warns(DeprecationWarning, match="selective.margin is now probability_margin"):
        np.testing.assert_array_equal(selective.margin(p), selective.probability_margin(p))
    with pytest.warns(DeprecationWarning, match="ood.margin is now softmax_margin"):
        np.testing.assert_array_equal(ood.margin(z), ood.softmax_margin(z))
    np.testing.assert_allclose(ood.softmax_margin(z), selective.probability_margin(p), atol=1e-14)


def test_one_log_softmax64():
    assert base.log_softmax64 is blocks.log_softmax64
    z32 = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    assert blocks.log_softmax64(z32).dtype == np.float64


# ------------------------------------------------------------------ one interval type
def test_interval_fields_and_json_form():
    iv = Interval(0.1, 0.3, 0.2, 0.95, 100, "bca", "poisson")
    assert (iv.estimate, iv.low, iv.high, iv.method, iv.n_resamples, iv.confidence_level) == (
        0.2, 0.1, 0.3, "bca", 100, 0.95)
    assert iv.to_dict() == {"estimate": 0.2, "low": 0.1, "high": 0.3, "confidence": 0.95}
    low, high = iv
    assert (low, high) == (0.1, 0.3)


def test_interval_old_names_warn():
    iv = Interval(0.1, 0.3, 0.2, 0.95, 100)
    with pytest.warns(DeprecationWarning, match="confidence_level"):
        assert iv.confidence == 0.95
    with pytest.warns(DeprecationWarning, match="no longer dicts"):
        assert iv["low"] == 0.1
    with pytest.warns(DeprecationWarning):
        assert Interval(low=0.1, high=0.3, estimate=0.2, confidence=0.95, n_resamples=100) == iv


def test_selective_detection_and_smooth_intervals_are_intervals(pred):
    p, y = pred
    c, ok = _conf_ok(p, y)
    sel = selective_rs.selective_intervals(c, ok, n_resamples=30, confidence_level=0.9, seed=1)
    for k in ("aurc", "eaurc", "augrc", "risk@0.8", "risk@0.9"):
        iv = sel[k]
        assert type(iv) is Interval and iv.method == "percentile" and iv.scheme == "multinomial"
        assert iv.n_resamples == 30 and iv.confidence_level == 0.9 and iv.low <= iv.high
    assert sel["aurc"].estimate == selective.aurc(c, ok)
    det = detection_rs.detection_intervals(c[ok], c[~ok], n_resamples=30, seed=1)
    assert all(type(v) is Interval for v in det.values())
    assert det["auroc"].estimate == ood.detection_metrics(c[ok], c[~ok])["auroc"]
    sm = smooth_rs.smooth_ece_interval(p, y, n_resamples=20, seed=1)
    assert isinstance(sm, Interval) and sm.scheme == "poisson"
    assert sm.to_dict() == {"estimate": sm.estimate, "low": sm.low, "high": sm.high, "confidence": 0.95,
                            "sigma": sm.sigma}


# ------------------------------------------------------------------ one n_resamples check
def _calls(p, y):
    c, ok = _conf_ok(p, y)
    r = smooth.smooth_reliability(p, y)
    return {
        "bootstrap_ci": lambda n: bootstrap_ci("ece", p, y, n_resamples=n),
        "selective_intervals": lambda n: selective_rs.selective_intervals(c, ok, n_resamples=n),
        "risk_coverage_band": lambda n: selective_rs.risk_coverage_band(c, ok, n_resamples=n),
        "smooth_ece_interval": lambda n: smooth_rs.smooth_ece_interval(p, y, n_resamples=n),
        "detection_intervals": lambda n: detection_rs.detection_intervals(c[ok], c[~ok], n_resamples=n),
        "ece_consistency_test": lambda n: decomposition.ece_consistency_test(p, y, n_resamples=n),
        "smooth_reliability": lambda n: smooth.smooth_reliability(p, y, n_resamples=n),
        "smooth_reliability_band": lambda n: smooth.smooth_reliability_band(p, y, r.sigma, r.x, n_resamples=n),
        "smooth_ece_resamples": lambda n: smooth.smooth_ece_resamples(c, ok.astype(float), r.sigma, n_resamples=n),
    }


@pytest.mark.parametrize("name", list(_calls(np.eye(2), np.arange(2))))
def test_every_n_resamples_has_the_shared_limit(pred, name):
    fn = _calls(*pred)[name]
    with pytest.raises(InputError, match=f"n_resamples: expected at most {MAX_RESAMPLES:,} resamples"):
        fn(MAX_RESAMPLES + 1)
    for bad in (-1, True, 2.5):
        with pytest.raises(InputError, match="n_resamples: expected a"):
            fn(bad)
