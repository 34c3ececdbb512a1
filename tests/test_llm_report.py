"""The language-model comparison report (calibrate.report.llm): every number against an
independent reference (lm-evaluation-harness's brier_score, HELM's equal-mass ECE rule,
evaluate_with_ci on a subject's rows, paired differences on the joined ids)."""

import bisect
import json
import math

import numpy as np
import pytest

from calibrate.io.llm import read_choice_logits
from calibrate.metrics import calibration as metrics
from calibrate.report import llm
from calibrate.resampling.tables import evaluate_with_ci, report_numbers


def lm_row(doc_id, lls, target, subject="s"):
    conts = [f" choice {j}" for j in range(len(lls))]
    return {"doc_id": doc_id, "doc": {"question": "Q?", "subject": subject}, "target": str(target),
            "arguments": {f"gen_args_{j}": {"arg_0": "Q?", "arg_1": c} for j, c in enumerate(conts)},
            "resps": [[[str(x), "False"]] for x in lls], "filtered_resps": [[str(x), "False"] for x in lls]}


def write_log(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def synthetic(n, k=4, sharpen=1.0, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k))
    y = rng.integers(0, k, n)
    z[np.arange(n), y] += 1.0
    z = sharpen * z
    m = z.max(1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(1, keepdims=True)) - 0.5, y


class Rows:
    """A stand-in for a Subset: logits, labels, ids, meta."""

    def __init__(self, logits, labels, ids, meta=None):
        self.logits, self.labels = np.asarray(logits, float), np.asarray(labels)
        self.ids = np.array(ids, dtype=object)
        self.meta = meta or {}

    @property
    def n(self):
        return len(self.labels)


def lm_eval_brier_score(items):
    """lm-evaluation-harness lm_eval/api/metrics.py brier_score: items are (gold, softmax(lls))."""
    gold, predictions = list(zip(*items))
    bs, num_class = np.array(predictions).shape
    gold_one_hot = np.eye(num_class)[list(gold)]
    return np.mean(np.sum((predictions - gold_one_hot) ** 2, axis=1))


def _softmax_row(lls):
    m = max(lls)
    e = [math.exp(x - m) for x in lls]
    return [v / sum(e) for v in e]


def test_brier_equals_lm_evaluation_harness_brier_score_on_samples(tmp_path):
    lls, y = synthetic(80, seed=1)
    p = write_log(tmp_path / "m" / "samples_t_x.jsonl", [lm_row(i, lls[i].tolist(), y[i]) for i in range(80)])
    cl = read_choice_logits(p)
    sub = llm.Subset(cl, np.arange(cl.n))
    ours = llm.evaluate_numbers(None, sub)["brier"]
    ref = lm_eval_brier_score([(int(y[i]), _softmax_row(lls[i].tolist())) for i in range(80)])
    assert ours == pytest.approx(ref, rel=1e-12)


def test_report_brier_on_scored_rows_equals_lm_eval_definition():
    lls, y = synthetic(200, seed=2)
    fit, test = Rows(lls[:100], y[:100], range(100)), Rows(lls[100:], y[100:], range(100, 200))
    r = llm.model_numbers(fit, test, n_resamples=50, alpha=None)
    ref = lm_eval_brier_score([(int(y[i]), _softmax_row(lls[i].tolist())) for i in range(100, 200)])
    assert r["table"]["brier"]["estimate"] == pytest.approx(ref, rel=1e-12)


def helm_ece_em(probs, correct, num_bins=10):
    """HELM's 10-bin ECE (the uncertainty-calibration package's get_ece_em): equal-count
    groups of the sorted max probabilities, edges at the midpoints between groups, a value's
    bin by bisect_left, sum over bins of |mean correct - mean prob| weighted by bin size."""
    s = sorted(probs)
    groups = np.array_split(np.array(s), num_bins)
    edges = [(groups[i][-1] + groups[i + 1][0]) / 2.0 for i in range(num_bins - 1)] + [1.0]
    edges = sorted(set(edges))
    bins = {}
    for p, c in zip(probs, correct):
        bins.setdefault(bisect.bisect_left(edges, p), []).append((p, c))
    return sum(len(v) / len(probs) * abs(np.mean([c for _, c in v]) - np.mean([p for p, _ in v]))
               for v in bins.values())


def test_equal_mass_ece_is_helms_ten_bin_rule():
    lls, y = synthetic(503, seed=3)
    p = metrics.softmax(lls)
    conf, correct = p.max(1), (p.argmax(1) == y).astype(float)
    sub = Rows(lls, y, range(503))
    assert llm.evaluate_numbers(None, sub)["ece_helm"] == pytest.approx(helm_ece_em(conf.tolist(), correct), abs=1e-12)


def test_per_subject_numbers_equal_evaluate_with_ci_estimates_on_that_subjects_rows():
    lls, y = synthetic(300, seed=4)
    subj = np.array(["a", "b", "c"] * 100, dtype=object)
    test = Rows(lls, y, range(300), {"subject": subj, "task": np.full(300, "t", dtype=object)})
    fit = Rows(*synthetic(100, seed=5), range(100))
    res = {"m": llm.model_numbers(fit, test, n_resamples=100, seed=7, alpha=None)}
    rows = llm.group_tables({"m": test}, res, "subject", n_resamples=100, seed=7)
    assert [r["group"] for r in rows] == ["a", "b", "c"]
    for r in rows:
        idx = np.flatnonzero(subj == r["group"])
        ref = evaluate_with_ci(metrics.log_softmax(lls[idx]), y[idx], 15, 100, seed=7)
        assert r["n"] == idx.size
        for key in ("accuracy", "ece", "nll", "brier"):
            assert r[key]["estimate"] == pytest.approx(ref[key]["estimate"], rel=1e-12)
            assert r[key]["low"] <= r[key]["high"]
        assert 0 < r["ece_p_calibrated"] <= 1 and r["ece_if_calibrated"] > 0


def test_a_group_of_one_row_gets_its_count_and_no_interval():
    lls, y = synthetic(5, seed=6)
    test = Rows(lls, y, range(5), {"subject": np.array(["a", "a", "a", "a", "b"], dtype=object)})
    res = {"m": {"log_probs": metrics.log_softmax(lls)}}
    rows = llm.group_tables({"m": test}, res, "subject", n_resamples=50)
    assert rows[1] == {"group": "b", "model": "m", "n": 1}


def test_shared_rows_join_on_ids_and_count_what_was_left_out():
    za, ya = synthetic(6, seed=8)
    a = Rows(za, ya, ["q0", "q1", "q2", "q3", "q4", "q5"])
    yb = np.array([ya[3], ya[1], ya[0], (ya[5] + 1) % 4, 0, 0])
    b = Rows(synthetic(6, seed=9)[0], yb, ["q3", "q1", "q0", "q5", "x1", "x2"])
    s = llm.shared_rows({"a": a, "b": b})
    assert s["ids"].tolist() == ["q0", "q1", "q3"]       # q5: gold differs; q2, q4 only in a
    assert s["label_conflicts"] == ["q5"]
    assert s["dropped"] == {"a": 3, "b": 3}
    assert s["rows"]["a"].tolist() == [0, 1, 3] and s["rows"]["b"].tolist() == [2, 1, 0]
    assert s["labels"].tolist() == [ya[0], ya[1], ya[3]]


def test_paired_differences_are_on_the_shared_questions_only():
    za, y = synthetic(120, seed=10)
    zb = za * 0.5 + np.random.default_rng(1).normal(size=za.shape)
    ids = [f"q{i}" for i in range(120)]
    a = Rows(za, y, ids)
    b = Rows(zb[10:][::-1], y[10:][::-1], ids[10:][::-1])   # b lacks q0..q9, rows in another order
    res = {"a": {"log_probs": metrics.log_softmax(a.logits)}, "b": {"log_probs": metrics.log_softmax(b.logits)}}
    s = llm.shared_rows({"a": a, "b": b})
    d = llm.paired_between_models(res, s, n_resamples=200, seed=3)
    idx = np.arange(10, 120)
    # the NLL difference, by a direct loop over the shared questions
    ref_nll = np.mean([-(metrics.log_softmax(zb[i:i + 1])[0, y[i]]) + metrics.log_softmax(za[i:i + 1])[0, y[i]]
                       for i in idx])
    assert d["b"]["nll"]["estimate"] == pytest.approx(ref_nll, rel=1e-10)
    _, ref, _ = report_numbers({"a": metrics.log_softmax(za[idx]), "b": metrics.log_softmax(zb[idx])}, y[idx], 15,
                               200, seed=3, keys=["accuracy", "ece", "nll", "brier"], reference="a")
    for key in ("ece", "nll", "brier"):
        assert d["b"][key]["estimate"] == pytest.approx(ref["b"][key]["estimate"], rel=1e-12)
        assert d["b"][key]["low"] == pytest.approx(ref["b"][key]["low"], rel=1e-12)
    acc = np.mean([int(zb[i].argmax() == y[i]) - int(za[i].argmax() == y[i]) for i in idx])
    assert d["b"]["accuracy"]["estimate"] == pytest.approx(acc, abs=1e-12)


def test_gold_not_finite_marks_rows_whose_gold_option_is_minus_inf():
    z = np.array([[0.0, -np.inf, 1.0], [0.0, -1.0, -np.inf], [-np.inf, 0.0, 0.0]])
    assert llm.gold_not_finite(z, np.array([1, 1, 1])).tolist() == [True, False, False]


def test_hash_half_puts_an_id_in_the_same_split_whatever_its_rows():
    ids = np.array([f"t/{i}" for i in range(400)], dtype=object)
    h = llm.hash_half(ids, seed=0)
    assert 150 < h.sum() < 250
    assert llm.hash_half(ids[::-1], seed=0).tolist() == h[::-1].tolist()
    assert llm.hash_half(ids, seed=1).tolist() != h.tolist()


def test_mean_interval_of_a_discrete_variable_matches_row_resampling():
    rng = np.random.default_rng(0)
    v = rng.integers(1, 5, 400).astype(float)
    ours = llm.mean_interval(v, n_resamples=4000, seed=1)
    means = np.array([v[rng.integers(0, 400, 400)].mean() for _ in range(4000)])
    lo, hi = np.quantile(means, [0.025, 0.975])
    assert ours["estimate"] == pytest.approx(v.mean())
    assert ours["low"] == pytest.approx(lo, abs=0.02) and ours["high"] == pytest.approx(hi, abs=0.02)


def test_temperature_is_fitted_on_the_fit_rows_and_scored_on_the_others():
    from calibrate import TemperatureScaling

    zf, yf = synthetic(150, sharpen=2.0, seed=11)
    zt, yt = synthetic(150, sharpen=2.0, seed=12)
    r = llm.model_numbers(Rows(zf, yf, range(150)), Rows(zt, yt, range(150, 300)), n_resamples=50, alpha=None)
    cal = TemperatureScaling().fit(zf, yf)
    assert r["table"]["temperature"]["estimate"] == pytest.approx(cal.temperature_, rel=1e-12)
    assert r["table"]["nll_t"]["estimate"] == pytest.approx(metrics.nll(cal.predict_proba(zt), yt), rel=1e-10)


def test_conformal_sets_are_calibrated_on_the_fit_rows():
    from calibrate.conformal import LAC, marginal_coverage, mean_set_size

    zf, yf = synthetic(300, seed=13)
    zt, yt = synthetic(300, seed=14)
    r = llm.model_numbers(Rows(zf, yf, range(300)), Rows(zt, yt, range(300, 600)), n_resamples=50, alpha=0.2)
    sets = LAC(alpha=0.2).fit(zf, yf).predict_sets(zt)
    assert r["table"]["lac_size"]["estimate"] == pytest.approx(mean_set_size(sets))
    assert r["table"]["lac_coverage"]["estimate"] == pytest.approx(marginal_coverage(sets, yt))
