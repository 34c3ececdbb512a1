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
    cp = conformal.LAC(alpha=0.1).fit(z[:300], y[:300])
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
    cp = getattr(conformal, cls)(randomized=randomized, seed=7, alpha=0.1, **kw).fit(z[:250], y[:250])
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
        lambda: conformal.APS(seed=3),
        lambda: conformal.RAPS(seed=4),
    ],
)
def test_coverage_over_random_splits(make):
    # E[coverage] = r / (n + 1) exactly for continuous scores, hence in [1 - a, 1 - a + 1/(n+1)]
    n_cal, n_test, alpha, splits = 100, 400, 0.1, 1000
    covs = []
    for s in range(splits):
        z, y = draw(n_cal + n_test, seed=1000 + s)
        sets = make().set_params(alpha=alpha).fit(z[:n_cal], y[:n_cal]).predict_sets(z[n_cal:])
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
        cp = conformal.LAC(mondrian=True, alpha=alpha).fit(z[:n_cal], y[:n_cal])
        assert cp.quantile_.shape == (3,)
        cc = conformal.class_conditional_coverage(cp.predict_sets(z[n_cal:]), y[n_cal:])
        per.append(cc["per_class"])
    per = np.array(per)
    se = per.std(0, ddof=1) / np.sqrt(splits)
    assert np.all(per.mean(0) >= 1 - alpha - 4 * se)
    # the per-class thresholds are the per-class order statistics
    z, y = draw(300, k=3, seed=9)
    cp = conformal.APS(mondrian=True, randomized=False, alpha=0.1).fit(z, y)
    sc = cp.conformity_scores(z, y)
    for j in range(3):
        assert cp.quantile_[j] == conformal.conformal_quantile(sc[y == j], 0.1)


def test_alpha_too_small_gives_full_sets_with_warning():
    z, y = draw(20, seed=3)
    with pytest.warns(conformal.ConformalWarning, match="too small for 5 calibration rows"):
        cp = conformal.LAC(alpha=0.1).fit(z[:5], y[:5])
    assert cp.quantile_ == math.inf
    assert cp.predict_sets(z[5:]).all()
    y2 = np.zeros(50, int)
    y2[:2] = 1  # class 1 has 2 rows, class 2 none
    z2 = np.random.default_rng(0).normal(size=(50, 3))
    with pytest.warns(conformal.ConformalWarning, match="2 of 3 classes have fewer than 9"):
        cp = conformal.LAC(mondrian=True, alpha=0.1).fit(z2, y2)
    assert np.isinf(cp.quantile_[1:]).all() and np.isfinite(cp.quantile_[0])
    sets = cp.predict_sets(z2)
    assert sets[:, 1:].all()


def test_save_load(tmp_path):
    z, y = draw(300, seed=10)
    cp = conformal.RAPS(mondrian=True, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", conformal.ConformalWarning)
        cp.set_params(alpha=0.05).fit(z[:200], y[:200])
    cp.save(tmp_path / "cp.json")
    back = conformal.load(tmp_path / "cp.json")
    np.testing.assert_array_equal(back.predict_sets(z[200:]), cp.predict_sets(z[200:]))
    (tmp_path / "bad.json").write_text('{"format": "calibrate.conformal", "version": 2, "class": "LAC"}')
    with pytest.raises(InputError, match=r"bad.json: field 'params': expected an object, got nothing \(missing\)"):
        conformal.load(tmp_path / "bad.json")


def test_json_round_trip_and_errors():
    z, y = draw(300, seed=4)
    for cp in (conformal.LAC(), conformal.APS(seed=None), conformal.RAPS(lam=0.1, k_reg=1),
               conformal.APS(mondrian=True, seed=5)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", conformal.ConformalWarning)
            cp.fit(z[:200], y[:200])
        text = json.dumps(cp.to_dict(), allow_nan=False)
        back = conformal.from_dict(json.loads(text))
        assert type(back) is type(cp) and back.get_params() == cp.get_params()
        np.testing.assert_array_equal(back.predict_sets(z[200:]), cp.predict_sets(z[200:]))
    with pytest.raises(InputError, match="not a calibrate conformal file"):
        conformal.from_dict({"format": "x"})
    d = conformal.LAC(alpha=0.1).fit(z, y).to_dict()
    d["class"] = "Nope"
    with pytest.raises(InputError, match="field 'class': unknown class 'Nope'"):
        conformal.from_dict(d)
    with pytest.raises(NotFittedError):
        conformal.APS().predict_sets(z)
    with pytest.raises(InputError, match=r"alpha: expected a number in \(0, 1\)"):
        conformal.LAC(alpha=1.5).fit(z, y)
    with pytest.raises(InputError, match="cal_labels"):
        conformal.LAC(alpha=0.1).fit(z, y[:-1])
    with pytest.raises(InputError, match="fitted on 6 classes"):
        conformal.LAC(alpha=0.1).fit(z, y).predict_sets(z[:, :3])
    with pytest.raises(InputError, match="lam"):
        conformal.RAPS(lam=-1, alpha=0.1).fit(z, y)


def test_float32_and_torch_inputs():
    z, y = draw(300, seed=6)
    cp = conformal.APS(seed=1, alpha=0.1).fit(z[:200], y[:200])
    z32 = z.astype(np.float32)
    cp32 = conformal.APS(seed=1, alpha=0.1).fit(z32[:200], y[:200])
    assert cp32.quantile_ == conformal.APS(seed=1, alpha=0.1).fit(z32[:200].astype(np.float64), y[:200]).quantile_
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
        ours = conformal.LAC(alpha=alpha).fit(z[:1000], y[:1000]).predict_sets(z[1000:])
        np.testing.assert_array_equal(ours, mapie_sets[:, :, 0])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(["LAC", "APS", "RAPS"]), st.booleans())
def test_sets_nested_in_alpha_and_prefixes_of_the_ranking(seed, cls, mondrian):
    z, y = draw(120, k=4, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", conformal.ConformalWarning)
        small = getattr(conformal, cls)(mondrian=mondrian, alpha=0.05).fit(z[:80], y[:80]).predict_sets(z[80:])
        large = getattr(conformal, cls)(mondrian=mondrian, alpha=0.3).fit(z[:80], y[:80]).predict_sets(z[80:])
    assert np.all(large <= small)  # a smaller alpha never removes a class
    if not mondrian:  # one threshold: each set is a top-m of the ranking by probability
        order = np.argsort(-softmax(z[80:], 1), axis=1, kind="stable")
        ranked = np.take_along_axis(small, order, axis=1)
        assert np.all(ranked[:, 1:] <= ranked[:, :-1])


# --------------------------------------------------------------------- estimators and files
@pytest.mark.parametrize("make", [
    lambda: conformal.LAC(alpha=0.2, mondrian=True),
    lambda: conformal.APS(alpha=0.05, randomized=False, seed=None),
    lambda: conformal.RAPS(alpha=0.1, lam=0.2, k_reg=2, seed=9),
])
def test_get_params_set_params_and_clone(make):
    from sklearn.base import clone

    cp = make()
    params = cp.get_params()
    assert "alpha" in params and "random_state" not in params
    twin = clone(cp)
    assert type(twin) is type(cp) and twin.get_params() == params and not twin.is_fitted()
    assert twin.set_params(alpha=0.3).alpha == 0.3 and cp.alpha == params["alpha"]
    z, y = draw(300, seed=12)
    fitted = clone(cp).fit(z[:200], y[:200])
    assert fitted.alpha_ == params["alpha"]
    if params.get("seed", 0) is not None:  # a fixed seed: a clone fits the same thresholds
        np.testing.assert_array_equal(clone(cp).fit(z[:200], y[:200]).quantile_, fitted.quantile_)


def test_check_is_fitted_reads_the_predictor():
    from sklearn.exceptions import NotFittedError as SkNotFitted
    from sklearn.utils.validation import check_is_fitted

    z, y = draw(100, seed=13)
    with pytest.raises(SkNotFitted):
        check_is_fitted(conformal.LAC())
    check_is_fitted(conformal.LAC().fit(z, y))


@pytest.mark.parametrize("make", [
    lambda: conformal.LAC(alpha=0.1),
    lambda: conformal.LAC(alpha=0.01, mondrian=True),  # some thresholds +inf
    lambda: conformal.APS(alpha=0.1, seed=None),
    lambda: conformal.RAPS(alpha=0.2, mondrian=True, seed=5),
])
def test_saved_file_round_trip_gives_identical_sets(make, tmp_path):
    z, y = draw(400, seed=14)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", conformal.ConformalWarning)
        cp = make().fit(z[:250], y[:250])
    cp.save(tmp_path / "cp.json")
    back = conformal.load(tmp_path / "cp.json")
    assert type(back) is type(cp) and back.get_params() == cp.get_params() and back.seed_ == cp.seed_
    np.testing.assert_array_equal(back.quantile_, cp.quantile_)
    np.testing.assert_array_equal(back.predict_sets(z[250:]), cp.predict_sets(z[250:]))
    assert json.loads((tmp_path / "cp.json").read_text())["params"]["alpha"] == cp.alpha


def _fitted_dict(mondrian=False):
    z, y = draw(200, seed=15)
    return conformal.APS(alpha=0.1, mondrian=mondrian, seed=3).fit(z, y).to_dict()


@pytest.mark.parametrize("edit, field", [
    (lambda d: d["params"].update(alpha=1.5), "params.alpha"),
    (lambda d: d["params"].update(seed=-1), "params.seed"),
    (lambda d: d["params"].update(randomized="yes"), "params.randomized"),
    (lambda d: d["params"].update(bogus=1), "params.bogus"),
    (lambda d: d["state"].pop("quantile_"), "state.quantile_"),
    (lambda d: d["state"].update(quantile_="x"), "state.quantile_"),
    (lambda d: d["state"].update(quantile_={"__float__": "nan"}), "state.quantile_"),
    (lambda d: d["state"].update(n_classes_=0), "state.n_classes_"),
    (lambda d: d["state"].update(seed_=1.5), "state.seed_"),
    (lambda d: d.update(version=7), "version"),
    (lambda d: d.update(extra=1), "extra"),
])
def test_bad_files_are_refused_naming_the_field(edit, field):
    d = _fitted_dict()
    edit(d)
    with pytest.raises(InputError, match=f"cp.json: field '{field}'") as e:
        conformal.from_dict(d, "cp.json")
    assert "\n" not in str(e.value)


def test_mondrian_thresholds_must_have_one_per_class():
    d = _fitted_dict(mondrian=True)
    d["state"]["quantile_"] = d["state"]["quantile_"][:2]
    with pytest.raises(InputError, match=r"field 'state.quantile_': expected a list of 6"):
        conformal.from_dict(d, "cp.json")


def test_version_1_files_still_load():
    z, y = draw(300, seed=16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", conformal.ConformalWarning)
        cp = conformal.APS(alpha=0.02, mondrian=True, seed=4).fit(z[:200], y[:200])
    q = [None if math.isinf(v) else float(v) for v in cp.quantile_]
    assert None in q
    v1 = {"format": "calibrate.conformal", "version": 1, "class": "APS",
          "params": {"randomized": True, "mondrian": True, "random_state": 4},
          "state": {"alpha_": 0.02, "n_classes_": 6, "n_calibration_": 200, "seed_": 4, "quantile_": q}}
    back = conformal.from_dict(v1)
    assert back.get_params() == cp.get_params()
    np.testing.assert_array_equal(back.predict_sets(z[200:]), cp.predict_sets(z[200:]))


def test_old_fit_alpha_and_random_state_warn_and_work():
    z, y = draw(300, seed=17)
    new = conformal.APS(alpha=0.15, seed=2).fit(z[:200], y[:200])
    with pytest.warns(DeprecationWarning, match="'random_state' is now 'seed'"):
        old = conformal.APS(random_state=2)
    with pytest.warns(DeprecationWarning, match="alpha is now a constructor parameter"):
        old.fit(z[:200], y[:200], 0.15)
    assert old.alpha == 0.15 and old.get_params() == new.get_params()
    np.testing.assert_array_equal(old.predict_sets(z[200:]), new.predict_sets(z[200:]))
