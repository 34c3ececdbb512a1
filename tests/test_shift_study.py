"""The shift / OOD numbers of the CIFAR-10 study (calibrate.apps.cifar10.shift), on synthetic logits."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from calibrate import metrics
from calibrate.apps.cifar10 import shift as sh
from calibrate.calibrators import TemperatureScaling
from calibrate.resampling.tables import evaluate_with_ci


def _logits(rng, n, k=4, scale=3.0, noise=0.0):
    y = rng.integers(0, k, n)
    z = rng.normal(size=(n, k)) * (1.0 + noise)
    z[np.arange(n), y] += scale
    return z, y


def test_shift_rows_equal_the_clean_metrics_cell_by_cell():
    rng = np.random.default_rng(0)
    z, y = _logits(rng, 300)
    t = TemperatureScaling().fit(*_logits(rng, 300))
    sets = [("clean", 0, {"m": z}), ("noise", 3, {"m": z * 0.5})]
    rows = sh.shift_rows(sets, y, {("m", "none"): None, ("m", "temperature"): t}, n_resamples=30)
    assert [(r["corruption"], r["calibrator"]) for r in rows] == [
        ("clean", "none"), ("clean", "temperature"), ("noise", "none"), ("noise", "temperature")]
    ref = evaluate_with_ci(t.predict_log_proba(z * 0.5), y, 15, 30, seed=0)
    r = rows[3]
    assert r["ece"] == pytest.approx(metrics.ece(np.exp(t.predict_log_proba(z * 0.5)), y, 15), abs=1e-12)
    assert r["ci"]["nll"] == {"low": ref["nll"]["low"], "high": ref["nll"]["high"]}
    assert r["accuracy"] == np.mean((z * 0.5).argmax(1) == y)


def test_medians_are_over_corruptions_at_each_severity():
    rows = [{"model": "m", "calibrator": "none", "corruption": c, "severity": s, "ece": v}
            for c, s, v in [("a", 1, 0.1), ("b", 1, 0.3), ("c", 1, 0.2), ("clean", 0, 0.05)]]
    assert sh.medians(rows) == {("m", "none"): {0: 0.05, 1: 0.2}}
    assert sh.by_severity(rows)[("m", "none")][1] == [0.1, 0.3, 0.2]


def _rows(table):
    """table: {(model, calibrator): {severity: (ece, nll)}} -> rows with one corruption."""
    return [{"model": m, "calibrator": c, "corruption": "x", "severity": s, "ece": e, "nll": n}
            for (m, c), d in table.items() for s, (e, n) in d.items()]


def test_patterns_all_hold_on_the_textbook_case():
    rows = _rows({
        ("baseline", "none"): {0: (0.05, 0.4), 5: (0.30, 2.0)},
        ("baseline", "temperature"): {0: (0.01, 0.3), 5: (0.25, 1.8)},
        ("ensemble", "none"): {0: (0.02, 0.3), 5: (0.15, 1.2)},
        ("ensemble", "temperature"): {0: (0.01, 0.3), 5: (0.14, 1.1)},
    })
    p = {x["pattern"]: x for x in sh.patterns(rows, ["baseline", "ensemble"], ("none", "temperature"))}
    assert [x["held"] for x in p.values()] == [True, True, True]
    assert p["ensembles degrade most gracefully"]["numbers"]["ece_at_max_severity"] == {"baseline": 0.30, "ensemble": 0.15}


def test_patterns_say_when_they_do_not_hold():
    rows = _rows({
        ("baseline", "none"): {0: (0.05, 0.4), 5: (0.04, 0.5)},  # does not degrade
        ("baseline", "temperature"): {0: (0.04, 0.3), 5: (0.01, 0.4)},  # helps more under shift
        ("ensemble", "none"): {0: (0.02, 0.3), 5: (0.20, 2.0)},  # worst at severity 5
        ("ensemble", "temperature"): {0: (0.01, 0.3), 5: (0.19, 1.9)},
    })
    p = sh.patterns(rows, ["baseline", "ensemble"], ("none", "temperature"))
    assert [x["held"] for x in p] == [False, False, False]
    assert "3 of 4" in p[0]["text"] or "2 of 4" in p[0]["text"]


def test_ood_rows_match_scikit_learn_auroc():
    rng = np.random.default_rng(1)
    z_in, _ = _logits(rng, 400, scale=4.0)
    z_out = rng.normal(size=(300, 4))
    s_in, s_out = sh.ood_score_sets(z_in), sh.ood_score_sets(z_out)
    rows = sh.ood_rows("m", "noise", "far", s_in, s_out, n_resamples=50)
    assert {r["score"] for r in rows} == {"MSP", "max logit", "energy", "entropy", "DOCTOR"}
    for r in rows:
        ref = roc_auc_score(np.r_[np.ones(400), np.zeros(300)], np.r_[s_in[r["score"]], s_out[r["score"]]])
        assert r["auroc"] == pytest.approx(ref, abs=1e-12)
        assert (r["n_in"], r["n_out"]) == (400, 300)
        assert r["ci"]["auroc"]["low"] <= r["auroc"] <= r["ci"]["auroc"]["high"]


def test_mutual_information_needs_samples_and_uses_them():
    rng = np.random.default_rng(2)
    samples = rng.normal(size=(5, 50, 3))
    s = sh.ood_score_sets(samples.mean(0), samples)
    assert "mutual information" in s and s["mutual information"].shape == (50,)
    assert np.all(s["mutual information"] <= 1e-12)  # negated MI: MI >= 0
    assert "mutual information" not in sh.ood_score_sets(samples.mean(0))


def test_roc_points_are_a_monotone_curve_from_0_to_1():
    rng = np.random.default_rng(3)
    fpr, tpr = sh.roc_points(rng.normal(1, 1, 5000), rng.normal(0, 1, 5000), max_points=100)
    assert fpr.size <= 101 and fpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)


def test_conformal_rows_cover_on_exchangeable_data():
    rng = np.random.default_rng(4)
    z_cal, y_cal = _logits(rng, 2000, scale=2.0)
    z_te, y_te = _logits(rng, 2000, scale=2.0)
    lp = metrics.log_softmax
    rows = sh.conformal_rows("m", lp(z_cal), y_cal, [("clean", 0, lp(z_te))], y_te, alpha=0.1)
    assert {r["method"] for r in rows} == {"LAC", "APS"}
    for r in rows:
        assert 0.87 < r["coverage"] < 0.93 and 1 <= r["mean_size"] <= 4


def test_pooled_predictions_take_logit_scores_from_the_members_mean_logits():
    from calibrate.metrics import ood
    from calibrate.metrics.uncertainty import pooled_log_probs

    rng = np.random.default_rng(5)
    samples = rng.normal(size=(4, 30, 3)) * 3
    pooled = pooled_log_probs(samples)
    assert np.allclose(ood.energy(pooled), 0.0)  # why: logsumexp of log-probabilities
    s = sh.ood_score_sets(pooled, samples)
    assert np.allclose(s["energy"], ood.energy(samples.mean(0)))
    assert np.allclose(s["max logit"], samples.mean(0).max(1))
    assert np.allclose(s["MSP"], np.exp(pooled).max(1))
