"""Multicalibration error over feature segments: brute-force segments, and MCGrad where installed."""

import itertools
import math

import numpy as np
import pytest

from calibrate._core.validation import InputError
from calibrate.metrics.cumulative import cumulative_calibration_from_scores, kuiper_sf
from calibrate.metrics.multicalibration import (
    OTHER,
    categorical_column,
    multicalibration_error,
    multicalibration_error_from_scores,
    numerical_column,
)


def _data(n=1500, seed=0):
    rng = np.random.default_rng(seed)
    s = rng.uniform(0.02, 0.98, n)
    country = rng.choice(["us", "fr", "de", "in", "br"], n, p=[0.4, 0.25, 0.15, 0.12, 0.08])
    age = rng.normal(40, 12, n)
    device = rng.integers(0, 3, n)
    bias = np.where(country == "fr", 0.1, 0.0) + np.where(age > 50, -0.06, 0.0)
    y = (rng.uniform(size=n) < np.clip(s + bias, 0, 1)).astype(int)
    return s, y, {"country": country, "age": age, "device": device}


def _brute_force_segments(features, cat, num, max_depth, n_bins, max_cat, min_size):
    """Every segment written out: masks from per-column value lists, intersections by loops."""
    n = len(next(iter(features.values())))
    per_col = []
    for c in cat:
        vals = list(features[c])
        counts = {v: vals.count(v) for v in set(vals)}
        if len(counts) > max_cat:
            kept = sorted(counts, key=lambda v: (-counts[v], v))[: max_cat - 1]
            vals = [v if v in kept else OTHER for v in vals]
        per_col.append((c, vals))
    for c in num:
        v = np.asarray(features[c], float)
        if len(set(v.tolist())) <= n_bins:
            per_col.append((c, v.tolist()))
            continue
        edges = sorted(set(np.quantile(v, np.linspace(0, 1, n_bins + 1)).tolist()))
        codes = []
        for x in v:
            b = 0
            while b < len(edges) - 2 and x > edges[b + 1]:
                b += 1
            codes.append(b)
        per_col.append((c, codes))
    out = []
    for depth in range(max_depth + 1):
        for cols in itertools.combinations(per_col, depth):
            for combo in itertools.product(*[sorted(set(vals), key=str) for _, vals in cols]):
                rows = [i for i in range(n) if all(vals[i] == v for (_, vals), v in zip(cols, combo))]
                if len(rows) >= min_size:
                    out.append(rows)
    return out


def test_segments_and_statistics_equal_a_brute_force():
    s, y, f = _data(600, 1)
    res = multicalibration_error_from_scores(s, y, f, categorical=["country", "device"], numerical=["age"],
                                             max_depth=2, n_bins=3, max_categories=3, min_segment_size=15,
                                             max_segments=None, ties="stable")
    segs = _brute_force_segments(f, ["country", "device"], ["age"], 2, 3, 3, 15)
    assert len(segs) == len(res.ecce)
    want = []
    for rows in segs:
        st = cumulative_calibration_from_scores(s[rows], y[rows], ties="stable")
        want.append((len(rows), st.ecce_r, st.ratio_r))
    got = sorted(zip(res.size.tolist(), res.ecce.tolist(), res.ratio.tolist()))
    for (n1, e1, r1), (n2, e2, r2) in zip(got, sorted(want)):
        assert n1 == n2
        assert e1 == pytest.approx(e2, rel=1e-12, abs=1e-15)
        assert r1 == pytest.approx(r2, rel=1e-12, abs=1e-15)


def test_each_segment_equals_the_cumulative_metric_on_its_rows():
    s, y, f = _data(800, 2)
    res = multicalibration_error_from_scores(s, y, f, categorical=["country"], max_depth=1,
                                             min_segment_size=1, max_categories=None)
    for seg, e, sg, p in zip(res.segments, res.ecce, res.sigma, res.pvalue):
        rows = np.ones(800, bool) if not seg else f["country"] == seg["country"]
        st = cumulative_calibration_from_scores(s[rows], y[rows])
        assert (e, sg, p) == pytest.approx((st.ecce_r, st.sigma, st.pvalue_r), rel=1e-12, abs=1e-15)


def test_multicalibration_error_is_the_largest_ratio_scaled_by_the_global_sigma():
    s, y, f = _data(1000, 3)
    res = multicalibration_error_from_scores(s, y, f, categorical=["country", "device"], numerical=["age"])
    assert res.segments[0] == {}
    assert res.mce_sigma == res.ratio.max() == res.ratio[res.worst]
    assert res.mce == pytest.approx(res.mce_sigma * res.sigma[0], rel=1e-15)
    prevalence = min(y.mean(), 1 - y.mean())
    assert res.prevalence == pytest.approx(prevalence)
    assert res.mce_relative == pytest.approx(100 * res.mce / prevalence, rel=1e-14)
    assert res.mce_pvalue == pytest.approx(kuiper_sf(res.mce_sigma), rel=1e-14)
    assert res.mce_pvalue == pytest.approx(res.pvalue.min(), rel=1e-12)
    assert res.mde == pytest.approx(5 * res.sigma[0])
    assert res.table()[0]["ratio"] == res.mce_sigma


def test_the_biased_segment_is_the_worst():
    s, y, f = _data(4000, 4)
    res = multicalibration_error_from_scores(s, y, f, categorical=["country"], max_depth=1, max_categories=None)
    assert res.segments[res.worst] == {"country": "fr"}
    assert res.mce_sigma > 5


def test_depth_zero_is_the_whole_data_set():
    s, y, f = _data(300, 5)
    res = multicalibration_error_from_scores(s, y, f, categorical=["country"], max_depth=0)
    assert res.segments == [{}]
    assert res.ecce[0] == pytest.approx(cumulative_calibration_from_scores(s, y).ecce_r)


def test_min_segment_size_and_max_segments():
    s, y, f = _data(500, 6)
    res = multicalibration_error_from_scores(s, y, f, categorical=["country", "device"], max_depth=2,
                                             max_categories=None, min_segment_size=40, max_segments=None)
    assert res.size.min() >= 40
    cut = multicalibration_error_from_scores(s, y, f, categorical=["country", "device"], max_depth=2,
                                             max_categories=None, min_segment_size=40, max_segments=5)
    assert cut.segments == res.segments[:5]


def test_categorical_column_pools_rare_values():
    col = categorical_column("c", np.array(["a"] * 5 + ["b"] * 3 + ["c"] * 2 + ["d"]), max_categories=3)
    assert col.values == ["a", "b", OTHER]
    np.testing.assert_array_equal(col.codes, [0] * 5 + [1] * 3 + [2] * 3)


def test_categorical_missing_values_are_a_category():
    col = categorical_column("c", np.array(["x", None, "y", None], dtype=object), max_categories=None)
    assert col.values == ["x", "y", None]
    np.testing.assert_array_equal(col.codes, [0, 2, 1, 2])


def test_numerical_column_bins_equal_pandas_qcut_rule():
    pd = pytest.importorskip("pandas")
    v = np.random.default_rng(0).gamma(2.0, size=513)  # 502 finite: the quantiles fall on data values
    v[::50] = np.nan
    col = numerical_column("x", v, n_bins=3)
    s = pd.Series(v)
    want = pd.cut(s, bins=s.quantile(np.linspace(0, 1, 4)), labels=False, include_lowest=True, duplicates="drop")
    np.testing.assert_array_equal(col.codes[~np.isnan(v)], want.to_numpy()[~np.isnan(v)])
    assert (col.codes[np.isnan(v)] == len(col.values) - 1).all() and col.values[-1] is None


def test_numerical_column_with_few_values_and_nan():
    col = numerical_column("x", np.array([1.0, 2.0, np.nan, 1.0]), n_bins=3)
    assert col.values == [1.0, 2.0, None]
    np.testing.assert_array_equal(col.codes, [0, 1, 2, 0])


def test_top_label_entry_point_matches_scores_entry_point():
    rng = np.random.default_rng(8)
    p = rng.dirichlet(np.ones(3), size=400)
    y = rng.integers(0, 3, size=400)
    f = {"g": rng.integers(0, 2, size=400)}
    a = multicalibration_error(p, y, f, categorical=["g"])
    b = multicalibration_error_from_scores(p.max(1), (p.argmax(1) == y).astype(int), f, categorical=["g"])
    np.testing.assert_array_equal(a.ecce, b.ecce)


@pytest.mark.parametrize("kw, match", [
    ({"categorical": ["nope"]}, "no column"),
    ({"categorical": "country"}, "lists of column names"),
    ({"categorical": ["country"], "numerical": ["country"]}, "named twice"),
    ({"categorical": ["country"], "min_segment_size": 10_000}, "no segment"),
    ({"categorical": ["country"], "max_depth": -1}, "max_depth"),
])
def test_invalid_arguments_are_refused(kw, match):
    s, y, f = _data(200, 9)
    with pytest.raises(InputError, match=match):
        multicalibration_error_from_scores(s, y, f, **kw)


def test_equal_to_mcgrad():
    pd = pytest.importorskip("pandas")
    metrics = pytest.importorskip("mcgrad.metrics")
    s, y, f = _data(3000, 10)
    w = np.random.default_rng(11).uniform(0.5, 2.0, size=s.size)
    df = pd.DataFrame({"s": s, "y": y, "w": w, **f})
    for weight in (None, "w"):
        theirs = metrics.MulticalibrationError(
            df, "y", "s", weight_column=weight, categorical_segment_columns=["country", "device"],
            numerical_segment_columns=["age"], max_depth=2, max_values_per_segment_feature=3,
            min_samples_per_segment=10, max_n_segments=None, precision_dtype="float64")
        ours = multicalibration_error_from_scores(
            s, y, f, categorical=["country", "device"], numerical=["age"], max_depth=2, n_bins=3,
            max_categories=3, min_segment_size=10, max_segments=None, sample_weight=None if weight is None else w)
        assert len(theirs.segments_ecce) == len(ours.ecce)
        np.testing.assert_allclose(np.sort(ours.ecce), np.sort(theirs.segments_ecce), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(np.sort(ours.ratio), np.sort(theirs.segments_ecce_sigma), rtol=1e-12)
        assert ours.mce_sigma == pytest.approx(theirs.mce_sigma, rel=1e-12)
        assert ours.mce == pytest.approx(theirs.mce, rel=1e-12)
        assert ours.mce_relative == pytest.approx(theirs.mce_relative, rel=1e-12)
        assert ours.mde == pytest.approx(theirs.mde, rel=1e-12)
        assert ours.global_ecce == pytest.approx(theirs.global_ecce, rel=1e-12)
        # MCGrad takes 1 - CDF (absolute error ~1e-16); ours sums the tail series
        assert ours.mce_pvalue == pytest.approx(theirs.mce_pvalue, rel=1e-6, abs=1e-15)
        assert math.isfinite(ours.mce_sigma)


def test_equal_to_mcgrad_with_missing_values():
    pd = pytest.importorskip("pandas")
    metrics = pytest.importorskip("mcgrad.metrics")
    rng = np.random.default_rng(12)
    n = 2000
    s = rng.uniform(0.02, 0.98, n)
    cat = rng.choice(["a", "b", "c", None], n, p=[0.5, 0.2, 0.2, 0.1]).astype(object)
    num = rng.normal(size=n)
    num[rng.uniform(size=n) < 0.1] = np.nan
    y = (rng.uniform(size=n) < np.clip(s + 0.1 * (num > 0.5), 0, 1)).astype(int)
    df = pd.DataFrame({"s": s, "y": y, "cat": cat, "num": num})
    for k in (3, 5):
        theirs = metrics.MulticalibrationError(
            df, "y", "s", categorical_segment_columns=["cat"], numerical_segment_columns=["num"], max_depth=2,
            max_values_per_segment_feature=k, min_samples_per_segment=10, max_n_segments=None,
            precision_dtype="float64")
        ours = multicalibration_error_from_scores(s, y, {"cat": cat, "num": num}, categorical=["cat"],
                                                  numerical=["num"], max_depth=2, n_bins=k, max_categories=k,
                                                  max_segments=None)
        assert len(theirs.segments_ecce) == len(ours.ecce)
        np.testing.assert_allclose(np.sort(ours.ecce), np.sort(theirs.segments_ecce), rtol=1e-12, atol=1e-15)
        assert ours.mce_sigma == pytest.approx(theirs.mce_sigma, rel=1e-12)
