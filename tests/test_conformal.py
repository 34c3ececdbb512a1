import json
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import softmax

from calibrate import InputError, NotFittedError, conformal


def draw(n, k=6, seed=0, temp=1.5):
    """Exchangeable rows: logits of a miscalibrated model, labels from softmax(z / temp)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * 2.0
    z[np.arange(n), rng.integers(0, k, n)] += 2.0
    p = softmax(z / temp, axis=1)
    y = (p.cumsum(1) > rng.random((n, 1))).argmax(1)
    return z, y


def brute_aps_scores(p, u, lam=0.0, k_reg=0):
    """Every class's (R)APS score by a per-row loop; u=None: non-randomized."""
    n, k = p.shape
    out = np.empty((n, k))
    for i in range(n):
        order = sorted(range(k), key=lambda j: (-p[i, j], j))
        before = 0.0
        for r, j in enumerate(order):
            ui = 1.0 if u is None else u[i]
            out[i, j] = before + ui * p[i, j] + lam * max(0, r + 1 - k_reg)
            before += p[i, j]
    return out


def predict_stream_u(seed, n):
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[1]).random(n)


def fit_stream_u(seed, n):
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[0]).random(n)


def test_rank_and_quantile_are_exact():
    for n in (1, 9, 10, 19, 99, 100, 999):
        for a in (0.5, 0.2, 0.1, 0.05, 0.01):
            r = conformal.conformal_rank(n, a)
            # the decimal alpha exactly: (n + 1)(1 - alpha) in integers of 1/100
            num = (n + 1) * (100 - round(a * 100))
            assert r == -(-num // 100)
            s = np.random.default_rng(n).random(n)
            q = conformal.conformal_quantile(s, a)
            assert q == (np.sort(s)[r - 1] if r <= n else math.inf)
            assert conformal.min_rows(a) == min(m for m in range(1, 1000) if conformal.conformal_rank(m, a) <= m)


def test_lac_sets_brute_force():
    z, y = draw(500, seed=1)
    cp = conformal.LAC().fit(z[:300], y[:300], 0.1)
    p = softmax(z, axis=1)
    scores = 1 - p[np.arange(300), y[:300]]
    q = np.sort(scores)[math.ceil(301 * 0.9) - 1]
    assert cp.quantile_ == q
    sets = cp.predict_sets(z[300:])
    exp = np.array([[1 - p[300 + i, j] <= q for j in range(6)] for i in range(200)])
    np.testing.assert_array_equal(sets, exp)


@pytest.mark.parametrize("randomized", [False, True])
@pytest.mark.parametrize("cls", ["APS", "RAPS"])
def test_aps_raps_scores_and_sets_brute_force(cls, randomized):
    z, y = draw(400, seed=2)
    z[:5, :2] = 1.0  # tied probabilities
    kw = dict(lam=0.05, k_reg=2) if cls == "RAPS" else {}
    cp = getattr(conformal, cls)(randomized=randomized, random_state=7, **kw).fit(z[:250], y[:250], 0.1)
    p = softmax(z, axis=1)
    lam, k_reg = (0.05, 2) if cls == "RAPS" else (0.0, 0)
    u_fit = fit_stream_u(7, 250) if randomized else None
    cal = brute_aps_scores(p[:250], u_fit, lam, k_reg)[np.arange(250), y[:250]]
    q = np.sort(cal)[math.ceil(251 * 0.9) - 1]
    assert cp.quantile_ == pytest.approx(q, abs=1e-14)
    np.testing.assert_allclose(cp.conformity_scores(z[:250], y[:250]), cal, atol=1e-14)
    u = predict_stream_u(7, 150) if randomized else None
    sc = brute_aps_scores(p[250:], u, lam, k_reg)
    sets = cp.predict_sets(z[250:])
    far = np.abs(sc - cp.quantile_) > 1e-12  # away from rounding at the threshold
    np.testing.assert_array_equal(sets[far], (sc <= cp.quantile_)[far])
    # sets are prefixes of the ranking; the same logits give the same sets
    np.testing.assert_array_equal(sets, cp.predict_sets(z[250:]))


@pytest.mark.parametrize(
    "make",
    [
        lambda: conformal.LAC(),
        lambda: conformal.APS(randomized=False),
        lambda: conformal.APS(random_state=3),
        lambda: conformal.RAPS(random_state=4),
    ],
)
def test_coverage_over_random_splits(make):
    # E[coverage] = r / (n + 1) exactly for continuous scores, hence in [1 - a, 1 - a + 1/(n+1)]
    n_cal, n_test, alpha, splits = 100, 400, 0.1, 1000
    covs = []
    for s in range(splits):
        z, y = draw(n_cal + n_test, seed=1000 + s)
        sets = make().fit(z[:n_cal], y[:n_cal], alpha).predict_sets(z[n_cal:])
        covs.append(conformal.marginal_coverage(sets, y[n_cal:]))
    covs = np.array(covs)
    mean, se = covs.mean(), covs.std(ddof=1) / np.sqrt(splits)
    r = conformal.conformal_rank(n_cal, alpha)
    assert abs(mean - r / (n_cal + 1)) < 4 * se
    assert mean >= 1 - alpha - 4 * se
    assert mean <= 1 - alpha + 1 / (n_cal + 1) + 4 * se


def test_mondrian_class_conditional_coverage():
    n_cal, n_test, alpha, splits = 600, 600, 0.2, 120
    per = []
    for s in range(splits):
        z, y = draw(n_cal + n_test, k=3, seed=5000 + s, temp=3.0)
        cp = conformal.LAC(mondrian=True).fit(z[:n_cal], y[:n_cal], alpha)
        assert cp.quantile_.shape == (3,)
        cc = conformal.class_conditional_coverage(cp.predict_sets(z[n_cal:]), y[n_cal:])
        per.append(cc["per_class"])
    per = np.array(per)
    se = per.std(0, ddof=1) / np.sqrt(splits)
    assert np.all(per.mean(0) >= 1 - alpha - 4 * se)
    # the per-class thresholds are the per-class order statistics
    z, y = draw(300, k=3, seed=9)
    cp = conformal.APS(mondrian=True, randomized=False).fit(z, y, 0.1)
    sc = cp.conformity_scores(z, y)
    for j in range(3):
        assert cp.quantile_[j] == conformal.conformal_quantile(sc[y == j], 0.1)


def test_alpha_too_small_gives_full_sets_with_warning():
    z, y = draw(20, seed=3)
    with pytest.warns(conformal.ConformalWarning, match="too small for 5 calibration rows"):
        cp = conformal.LAC().fit(z[:5], y[:5], 0.1)
    assert cp.quantile_ == math.inf
    assert cp.predict_sets(z[5:]).all()
    y2 = np.zeros(50, int)
    y2[:2] = 1  # class 1 has 2 rows, class 2 none
    z2 = np.random.default_rng(0).normal(size=(50, 3))
    with pytest.warns(conformal.ConformalWarning, match="2 of 3 classes have fewer than 9"):
        cp = conformal.LAC(mondrian=True).fit(z2, y2, 0.1)
    assert np.isinf(cp.quantile_[1:]).all() and np.isfinite(cp.quantile_[0])
    sets = cp.predict_sets(z2)
    assert sets[:, 1:].all()


def test_save_load(tmp_path):
    z, y = draw(300, seed=10)
    cp = conformal.RAPS(mondrian=True, random_state=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", conformal.ConformalWarning)
        cp.fit(z[:200], y[:200], 0.05)
    cp.save(tmp_path / "cp.json")
    back = conformal.load(tmp_path / "cp.json")
    np.testing.assert_array_equal(back.predict_sets(z[200:]), cp.predict_sets(z[200:]))
    (tmp_path / "bad.json").write_text('{"format": "calibrate.conformal", "version": 1, "class": "LAC"}')
    with pytest.raises(InputError, match="malformed"):
        conformal.load(tmp_path / "bad.json")


def test_json_round_trip_and_errors():
    z, y = draw(300, seed=4)
    for cp in (conformal.LAC(), conformal.APS(random_state=None), conformal.RAPS(lam=0.1, k_reg=1),
               conformal.APS(mondrian=True, random_state=5)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", conformal.ConformalWarning)
            cp.fit(z[:200], y[:200], 0.1)
        text = json.dumps(cp.to_dict(), allow_nan=False)
        back = conformal.from_dict(json.loads(text))
        assert type(back) is type(cp) and back.get_params() == cp.get_params()
        np.testing.assert_array_equal(back.predict_sets(z[200:]), cp.predict_sets(z[200:]))
    with pytest.raises(InputError, match="not a calibrate conformal file"):
        conformal.from_dict({"format": "x"})
    d = conformal.LAC().fit(z, y, 0.1).to_dict()
    d["class"] = "Nope"
    with pytest.raises(InputError, match="unknown class"):
        conformal.from_dict(d)
    with pytest.raises(NotFittedError):
        conformal.APS().predict_sets(z)
    with pytest.raises(InputError, match=r"alpha: expected a number in \(0, 1\)"):
        conformal.LAC().fit(z, y, 1.5)
    with pytest.raises(InputError, match="cal_labels"):
        conformal.LAC().fit(z, y[:-1], 0.1)
    with pytest.raises(InputError, match="fitted on 6 classes"):
        conformal.LAC().fit(z, y, 0.1).predict_sets(z[:, :3])
    with pytest.raises(InputError, match="lam"):
        conformal.RAPS(lam=-1).fit(z, y, 0.1)


def test_float32_and_torch_inputs():
    z, y = draw(300, seed=6)
    cp = conformal.APS(random_state=1).fit(z[:200], y[:200], 0.1)
    z32 = z.astype(np.float32)
    cp32 = conformal.APS(random_state=1).fit(z32[:200], y[:200], 0.1)
    assert cp32.quantile_ == conformal.APS(random_state=1).fit(
        z32[:200].astype(np.float64), y[:200], 0.1).quantile_
    torch = pytest.importorskip("torch")
    np.testing.assert_array_equal(cp.predict_sets(torch.tensor(z[200:])), cp.predict_sets(z[200:]))


def test_set_metrics_brute_force():
    rng = np.random.default_rng(0)
    sets = rng.random((200, 4)) < 0.4
    y = rng.integers(0, 3, 200)  # class 3 absent
    hit = np.array([sets[i, y[i]] for i in range(200)])
    assert conformal.marginal_coverage(sets, y) == hit.mean()
    assert conformal.mean_set_size(sets) == np.mean([row.sum() for row in sets])
    cc = conformal.class_conditional_coverage(sets, y)
    for j in range(3):
        assert cc["per_class"][j] == pytest.approx(hit[y == j].mean())
    assert np.isnan(cc["per_class"][3]) and cc["count"][3] == 0
    assert cc["worst"] == pytest.approx(min(hit[y == j].mean() for j in range(3)))
    ssc = conformal.size_stratified_coverage(sets, y)
    sizes = sets.sum(1)
    assert ssc["size"].tolist() == sorted(set(sizes.tolist()))
    for s, c, v in zip(ssc["size"], ssc["count"], ssc["coverage"]):
        assert c == (sizes == s).sum() and v == pytest.approx(hit[sizes == s].mean())
    with pytest.raises(InputError, match="sets: expected a"):
        conformal.mean_set_size(np.ones(3, bool))
    assert conformal.mean_set_size(sets.astype(int)) == conformal.mean_set_size(sets)


def test_same_lac_sets_as_mapie():
    pytest.importorskip("mapie")
    from mapie.classification import SplitConformalClassifier
    from sklearn.base import BaseEstimator, ClassifierMixin

    class Softmax(ClassifierMixin, BaseEstimator):
        """A prefit 'model' whose inputs are the logits."""

        def __init__(self, k=6):
            self.k = k

        def fit(self, X, y):
            self.classes_ = np.arange(self.k)
            self.n_features_in_ = X.shape[1]
            return self

        def predict_proba(self, X):
            return softmax(np.asarray(X, dtype=np.float64), axis=1)

        def predict(self, X):
            return self.predict_proba(X).argmax(1)

    z, y = draw(3000, seed=8)
    for alpha in (0.05, 0.1, 0.2):
        m = SplitConformalClassifier(
            estimator=Softmax().fit(z, y), confidence_level=1 - alpha, conformity_score="lac", prefit=True
        )
        m.conformalize(z[:1000], y[:1000])
        _, mapie_sets = m.predict_set(z[1000:])
        ours = conformal.LAC().fit(z[:1000], y[:1000], alpha).predict_sets(z[1000:])
        np.testing.assert_array_equal(ours, mapie_sets[:, :, 0])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(["LAC", "APS", "RAPS"]), st.booleans())
def test_sets_nested_in_alpha_and_prefixes_of_the_ranking(seed, cls, mondrian):
    z, y = draw(120, k=4, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", conformal.ConformalWarning)
        small = getattr(conformal, cls)(mondrian=mondrian).fit(z[:80], y[:80], 0.05).predict_sets(z[80:])
        large = getattr(conformal, cls)(mondrian=mondrian).fit(z[:80], y[:80], 0.3).predict_sets(z[80:])
    assert np.all(large <= small)  # a smaller alpha never removes a class
    if not mondrian:  # one threshold: each set is a top-m of the ranking by probability
        order = np.argsort(-softmax(z[80:], 1), axis=1, kind="stable")
        ranked = np.take_along_axis(small, order, axis=1)
        assert np.all(ranked[:, 1:] <= ranked[:, :-1])
