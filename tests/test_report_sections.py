"""The report's sections beyond ECE (issue 13, item 6) and `evaluate --json`'s new keys.

Numbers are checked against direct calls of the numpy functions they come from
(calibrate.metrics.selective / smooth / decomposition / ood / conformal), the bootstraps by
group counts against the public functions on explicitly resampled arrays, and the
detection metrics also against scikit-learn."""

import json
import os
import subprocess
import sys

import matplotlib
import numpy as np
import pytest
from conftest import make_logits
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, roc_auc_score

import calibrate
from calibrate import conformal, metrics
from calibrate.metrics import decomposition, ood, selective, smooth, summary
from calibrate.report import figures
from calibrate.resampling import detection as detection_rs
from calibrate.resampling import selective as selective_rs
from calibrate.resampling import smooth as smooth_rs

NEW_KEYS = ("aurc", "augrc", "smooth_ece", "brier_calibration", "brier_refinement", "overconfidence",
            "underconfidence")


def run(*args):
    return subprocess.run([sys.executable, "-m", "calibrate.cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "CALIBRATE_DEBUG": ""})


def top(p, y):
    return p.max(axis=1), p.argmax(axis=1) == y


# --------------------------------------------------------------------- summary_metrics
@pytest.fixture(scope="module")
def pred():
    z, y = make_logits(n=1500, k=5, temperature=2.0, seed=3)
    return z, calibrate.softmax(z), y


def test_summary_metrics_equal_the_numpy_functions(pred):
    z, p, y = pred
    s = summary.summary_metrics(p, y, 10, logits=z)
    for k, v in metrics.all_metrics(p, y, 10, logits=z).items():
        assert s[k] == v
    c, ok = top(p, y)
    assert s["aurc"] == pytest.approx(selective.aurc(c, ok), abs=1e-15)
    assert s["augrc"] == pytest.approx(selective.augrc(c, ok), abs=1e-15)
    assert s["smooth_ece"] == smooth.smooth_ece(p, y)
    bd = decomposition.brier_decomposition(p, y, 10)
    assert s["brier_calibration"] == bd["reliability"]
    assert s["brier_calibration"] + s["brier_refinement"] == pytest.approx(metrics.brier(p, y), abs=1e-14)
    ou = decomposition.ece_over_under(p, y, 10)
    assert (s["overconfidence"], s["underconfidence"]) == (ou["overconfidence"], ou["underconfidence"])
    assert s["overconfidence"] + s["underconfidence"] == pytest.approx(metrics.ece(p, y, 10), abs=1e-14)
    assert set(summary.SUMMARY_NAMES) == set(s)


def test_summary_metrics_with_ties_and_confidence_one():
    p = np.array([[1.0, 0.0], [1.0, 0.0], [0.5, 0.5], [0.5, 0.5], [0.25, 0.75]])
    y = np.array([0, 1, 0, 1, 1])
    s = summary.summary_metrics(p, y, 4)
    c, ok = top(p, y)
    assert s["aurc"] == pytest.approx(selective.aurc(c, ok), abs=1e-15)
    assert s["augrc"] == pytest.approx(selective.augrc(c, ok), abs=1e-15)


# --------------------------------------------------------------------- selective bootstrap
def tied_scores(n=400, seed=0):
    rng = np.random.default_rng(seed)
    c = np.round(rng.random(n) * 12) / 12  # many ties
    return c, rng.random(n) < c


def test_selective_resampler_equals_the_public_functions_on_resampled_rows():
    c, ok = tied_scores()
    rs = selective_rs.SelectiveResampler(c, ok, coverages=(0.5, 0.8, 0.9), grid=np.array([0.1, 0.33, 1.0]))
    rng = np.random.default_rng(7)
    for rows in [np.arange(c.size)] + [rng.integers(0, c.size, c.size) for _ in range(5)]:
        v = rs.values(rows)
        cr, okr = c[rows], ok[rows]
        assert v["aurc"] == pytest.approx(selective.aurc(cr, okr), abs=1e-13)
        assert v["eaurc"] == pytest.approx(selective.eaurc(cr, okr), abs=1e-13)
        assert v["augrc"] == pytest.approx(selective.augrc(cr, okr), abs=1e-13)
        for cov in (0.5, 0.8, 0.9):
            assert v[f"risk@{cov:g}"] == pytest.approx(selective.risk_at_coverage(cr, okr, cov), abs=1e-13)
        np.testing.assert_allclose(v["curve"], [selective.risk_at_coverage(cr, okr, g) for g in (0.1, 0.33, 1.0)],
                                   atol=1e-13)
    e = rs.estimate()
    assert e["aurc"] == pytest.approx(selective.aurc(c, ok), abs=1e-13)


def test_selective_intervals_are_seeded_and_ordered():
    c, ok = tied_scores(200, seed=1)
    a = selective_rs.selective_intervals(c, ok, n_resamples=50, seed=3)
    b = selective_rs.selective_intervals(c, ok, n_resamples=50, seed=3)
    assert a["aurc"] == b["aurc"]
    for k in ("aurc", "eaurc", "augrc", "risk@0.8", "risk@0.9"):
        assert a[k].low <= a[k].high
    # the documented draws, recomputed with the public functions
    rng = np.random.default_rng(3)
    vals = [selective.aurc(c[r], ok[r]) for r in (rng.integers(0, 200, 200) for _ in range(50))]
    assert a["aurc"].low == pytest.approx(np.quantile(vals, 0.025), abs=1e-13)
    assert a["aurc"].high == pytest.approx(np.quantile(vals, 0.975), abs=1e-13)
    assert np.all(a["curve"]["low"] <= a["curve"]["high"])


def test_smooth_ece_interval_is_the_documented_bootstrap(pred):
    _, p, y = pred
    iv = smooth_rs.smooth_ece_interval(p, y, n_resamples=20, seed=5)
    est, s = smooth.smooth_ece(p, y, return_sigma=True)
    assert iv.estimate == est and iv.sigma == s
    c, ok = top(p, y)
    draws = smooth.smooth_ece_resamples(c, ok.astype(float), s, n_resamples=20, seed=5)
    assert (iv.low, iv.high) == pytest.approx(tuple(np.quantile(draws, [0.025, 0.975])), abs=1e-15)


def test_cell_resampled_smooth_ece_matches_the_row_level_poisson_bootstrap():
    """Same Poisson weights summed per (cell, outcome) vs per row: the cell version moves each
    row at most 1/4096; and the unit weights give the exact smooth ECE up to that move."""
    rng = np.random.default_rng(7)
    n = 10_000
    f = rng.beta(5, 2, n)
    y = (rng.random(n) < f ** 1.3).astype(float)
    est, s = smooth.smooth_ece(f, y, return_sigma=True)
    draws = smooth.smooth_ece_resamples(f, y, s, n_resamples=400, seed=1)
    rows = [smooth._smece_sigma(np.repeat(f, w), np.repeat(y, w), s) for w in (rng.poisson(1.0, n) for _ in range(400))]
    se = np.std(rows)
    assert abs(np.mean(draws) - np.mean(rows)) < 0.3 * se
    assert abs(np.std(draws) - se) < 0.2 * se
    for q in (0.025, 0.975):
        assert abs(np.quantile(draws, q) - np.quantile(rows, q)) < 0.5 * se
    cs = smooth._CellSmoother(f, y, s, np.linspace(0, 1, max(round(10 / s), 200)), smooth.BAND_CELLS)
    num = cs.smooth((cs.cnt * (cs.centre - cs.outcome))[None])
    den = cs.smooth(cs.cnt[None]) + smooth._DENS_EPS
    assert float(np.abs(num).sum() / den.sum()) == pytest.approx(est, abs=2e-4)


# --------------------------------------------------------------------- detection bootstrap
def test_detection_resampler_equals_detection_metrics_and_sklearn():
    rng = np.random.default_rng(2)
    s_in = np.round(rng.normal(1.0, 1.0, 300), 1)  # ties within and across the two sets
    s_out = np.round(rng.normal(0.0, 1.0, 200), 1)
    rs = detection_rs.DetectionResampler(s_in, s_out)
    for ri, ro in [(np.arange(300), np.arange(200))] + [(rng.integers(0, 300, 300), rng.integers(0, 200, 200))
                                                         for _ in range(4)]:
        a, b = s_in[ri], s_out[ro]
        v = rs.values(ri, ro)
        ref = ood.detection_metrics(a, b)
        for k in ref:
            assert v[k] == pytest.approx(ref[k], abs=1e-12)
        yy = np.r_[np.ones(a.size), np.zeros(b.size)]
        ss = np.r_[a, b]
        assert v["auroc"] == pytest.approx(roc_auc_score(yy, ss), abs=1e-12)
        assert v["aupr_in"] == pytest.approx(average_precision_score(yy, ss), abs=1e-12)
        assert v["aupr_out"] == pytest.approx(average_precision_score(1 - yy, -ss), abs=1e-12)
    batch = rs.values(np.stack([np.arange(300)] * 2), np.stack([np.arange(200)] * 2))
    assert batch["auroc"].shape == (2,)
    iv = detection_rs.detection_intervals(s_in, s_out, n_resamples=30, seed=1)
    assert iv["auroc"].estimate == pytest.approx(ood.detection_metrics(s_in, s_out)["auroc"], abs=1e-12)
    assert all(iv[k].low <= iv[k].high for k in iv)


# --------------------------------------------------------------------- figures
def test_new_figures_are_figure_objects_and_touch_no_global_state(pred):
    _, p, y = pred
    before = dict(matplotlib.rcParams)
    c, ok = top(p, y)
    rc = figures.risk_coverage_data(c, ok, label="a", n_resamples=10)
    np.testing.assert_array_equal(rc.high, selective_rs.risk_coverage_band(c, ok, n_resamples=10)["high"])
    cov, risk = selective.risk_coverage(c, ok)
    np.testing.assert_array_equal(rc.coverage, cov)
    np.testing.assert_array_equal(rc.risk, risk)
    assert rc.aurc == pytest.approx(selective.aurc(c, ok), abs=1e-15)
    sm = figures.smooth_reliability_data(p, y, label="a", n_resamples=5)
    ref = smooth.smooth_reliability(p, y)
    np.testing.assert_array_equal(sm.y, ref.y)
    np.testing.assert_array_equal(sm.upper, smooth.smooth_reliability_band(p, y, ref.sigma, ref.x, n_resamples=5)[1])
    assert sm.smece_low <= sm.smece_high
    h = figures.score_histogram_data(ood.max_logit(p), ood.max_logit(p[:100] * 0.5), label="max logit")
    assert np.sum(h.density_in * np.diff(h.edges)) == pytest.approx(1.0)
    assert np.sum(h.density_out * np.diff(h.edges)) == pytest.approx(1.0)
    for fig in (figures.risk_coverage_figure([rc, rc]),
                figures.binned_and_smooth_figure([figures.reliability_data(p, y, 10)], [sm]),
                figures.score_histogram_figure([h, h])):
        assert isinstance(fig, Figure)
        assert figures.figure_to_png(fig)[:8] == b"\x89PNG\r\n\x1a\n"
    assert dict(matplotlib.rcParams) == before


# --------------------------------------------------------------------- CLI: evaluate
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("sections")
    z, y = make_logits(n=600, k=4, temperature=2.5, seed=0)
    np.savez(d / "val.npz", logits=z, labels=y)
    z2, y2 = make_logits(n=800, k=4, temperature=2.5, seed=1)
    np.savez(d / "test.npz", logits=z2, labels=y2)
    rng = np.random.default_rng(9)
    np.savez(d / "ood.npz", logits=0.3 * z2[:300] + rng.normal(size=(300, 4)))
    np.savez(d / "ood5.npz", logits=rng.normal(size=(50, 5)))
    return d


def test_evaluate_json_has_the_new_keys(files):
    r = run("evaluate", files / "test.npz", "--json", "--bins", "10")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    f = np.load(files / "test.npz")
    p = calibrate.softmax(f["logits"])
    ref = summary.summary_metrics(p, f["labels"], 10, logits=f["logits"])
    for k in NEW_KEYS:
        assert res[k] == pytest.approx(ref[k], rel=1e-12, abs=1e-15), k
    assert res["aurc"] == pytest.approx(selective.aurc(*top(p, f["labels"])), abs=1e-14)
    text = run("evaluate", files / "test.npz").stdout
    for label in summary.BEYOND_NAMES.values():
        assert label in text


# --------------------------------------------------------------------- CLI: report
@pytest.fixture(scope="module")
def report(files):
    out = files / "r.html"
    r = run("report", files / "test.npz", "--fit-on", files / "val.npz", "--methods", "temperature,isotonic",
            "--resamples", "20", "--ood", files / "ood.npz", "--conformal", "0.1", "-o", out,
            "--json", out.with_suffix(".json"))
    assert r.returncode == 0, r.stderr
    return out.read_text(), json.loads(out.with_suffix(".json").read_text())


def _fitted(files):
    v, t = np.load(files / "val.npz"), np.load(files / "test.npz")
    cals = {m: calibrate.get_calibrator(m).fit(v["logits"], v["labels"]) for m in ("temperature", "isotonic")}
    lps = {"uncalibrated": metrics.log_softmax(t["logits"]),
           **{m: c.predict_log_proba(t["logits"]) for m, c in cals.items()}}
    return v, t, cals, lps


def test_report_has_the_new_sections(report):
    html, data = report
    for sid in ("smooth", "selective", "ood", "conformal"):
        assert f'<section id="{sid}">' in html
    for text in ("AURC", "E-AURC", "AUGRC", "risk at 80 % coverage", "smooth ECE", "FPR at 95 % TPR", "AUPR-out",
                 "DOCTOR", "energy", "mean set size", "worst-class coverage", "calibration (REL)",
                 "ECE overconfidence"):
        assert text in html, text
    for key in ("decomposition", "smooth", "selective", "ood", "conformal"):
        assert key in data
    assert html.count("<img") >= 5  # + smoothed, risk-coverage, OOD histograms


def test_report_numbers_equal_direct_calls(files, report):
    html, data = report
    v, t, cals, lps = _fitted(files)
    y = t["labels"]
    for name, lp in lps.items():
        p = np.exp(lp)
        c, ok = top(p, y)
        sel = data["selective"]["predictions"][name]
        assert sel["aurc"]["estimate"] == pytest.approx(selective.aurc(c, ok), abs=1e-12)
        assert sel["eaurc"]["estimate"] == pytest.approx(selective.eaurc(c, ok), abs=1e-12)
        assert sel["augrc"]["estimate"] == pytest.approx(selective.augrc(c, ok), abs=1e-12)
        assert sel["risk@0.9"]["estimate"] == pytest.approx(selective.risk_at_coverage(c, ok, 0.9), abs=1e-12)
        assert sel["aurc"]["low"] <= sel["aurc"]["high"]
        assert data["smooth"]["predictions"][name]["smooth_ece"]["estimate"] == pytest.approx(
            smooth.smooth_ece(p, y), abs=1e-12)
        bd = decomposition.brier_decomposition(p, y, 15)
        dec = data["decomposition"][name]
        assert dec["reliability"] == pytest.approx(bd["reliability"], abs=1e-12)
        assert dec["brier_refinement"] == pytest.approx(bd["brier"] - bd["reliability"], abs=1e-12)
        assert dec["overconfidence"] == pytest.approx(decomposition.ece_over_under(p, y)["overconfidence"], abs=1e-12)
    assert f"{data['selective']['predictions']['temperature']['aurc']['estimate']:.4f}" in html


def test_report_ood_numbers(files, report):
    _, data = report
    v, t, cals, lps = _fitted(files)
    zo = np.load(files / "ood.npz")["logits"]
    o = data["ood"]
    assert o["n_out"] == 300 and o["n_in"] == 800
    unc = o["predictions"]["uncalibrated"]
    assert set(unc) == {"MSP", "max logit", "energy", "entropy", "DOCTOR"}
    ref = ood.detection_metrics(ood.energy(t["logits"]), ood.energy(zo))
    for k in ref:
        assert unc["energy"][k]["estimate"] == pytest.approx(ref[k], abs=1e-12)
    yy = np.r_[np.ones(800), np.zeros(300)]
    assert unc["max logit"]["auroc"]["estimate"] == pytest.approx(
        roc_auc_score(yy, np.r_[t["logits"].max(1), zo.max(1)]), abs=1e-12)
    # calibrated: only the scores that depend on the probabilities, from the calibrator's
    iso = o["predictions"]["isotonic"]
    assert set(iso) == {"MSP", "entropy", "DOCTOR"}
    cal = cals["isotonic"]
    ref = ood.detection_metrics(ood.doctor(cal.predict_log_proba(t["logits"])), ood.doctor(cal.predict_log_proba(zo)))
    assert iso["DOCTOR"]["fpr_at_95tpr"]["estimate"] == pytest.approx(ref["fpr_at_95tpr"], abs=1e-12)


def test_report_conformal_numbers_fit_on(files, report):
    _, data = report
    v, t, cals, lps = _fitted(files)
    cf = data["conformal"]
    assert cf["alpha"] == 0.1 and cf["calibration"] == "fit-on"
    assert cf["n_calibration"] == 600 and cf["n_evaluation"] == 800
    for name in ("uncalibrated", "temperature"):
        cal_lp = metrics.log_softmax(v["logits"]) if name == "uncalibrated" else \
            cals[name].predict_log_proba(v["logits"])
        for key, cp in (("lac", conformal.LAC(alpha=0.1)), ("aps", conformal.APS(seed=0, alpha=0.1))):
            sets = cp.fit(cal_lp, v["labels"]).predict_sets(lps[name])
            got = cf["predictions"][name][key]
            assert got["coverage"] == conformal.marginal_coverage(sets, t["labels"])
            assert got["mean_set_size"] == conformal.mean_set_size(sets)
            assert got["worst_class_coverage"] == conformal.class_conditional_coverage(sets, t["labels"])["worst"]
            sizes = sets.sum(1)
            nonempty = [np.mean(sets[sizes == s, t["labels"][sizes == s]]) for s in np.unique(sizes) if s > 0]
            assert got["worst_size_coverage"] == pytest.approx(min(nonempty), abs=1e-15)
            assert got["empty_fraction"] == np.mean(sizes == 0)


def test_report_conformal_half_split_without_fit_on(files, tmp_path):
    out = tmp_path / "h.html"
    r = run("report", files / "test.npz", "--resamples", "10", "--conformal", "0.2", "--seed", "4", "-o", out,
            "--json", out.with_suffix(".json"))
    assert r.returncode == 0, r.stderr
    data = json.loads(out.with_suffix(".json").read_text())
    cf = data["conformal"]
    assert cf["calibration"] == "test half split" and cf["seed"] == 4
    t = np.load(files / "test.npz")
    perm = np.random.default_rng(4).permutation(800)
    a, b = perm[:400], perm[400:]
    sets = conformal.LAC(alpha=0.2).fit(t["logits"][a], t["labels"][a]).predict_sets(t["logits"][b])
    assert cf["predictions"]["uncalibrated"]["lac"]["coverage"] == conformal.marginal_coverage(sets, t["labels"][b])
    assert cf["n_calibration"] == 400 and cf["n_evaluation"] == 400
    assert "ood" not in data
    assert "random half of the test rows" in out.read_text()


@pytest.mark.parametrize("args, fragment", [
    (("--conformal", "1.5"), "--conformal: expected a miscoverage ALPHA in (0, 1)"),
    (("--ood", "ood5.npz"), "has 5 classes"),
])
def test_report_bad_new_options_are_clean_errors(files, tmp_path, args, fragment):
    args = [files / a if a.endswith(".npz") else a for a in args]
    r = run("report", files / "test.npz", *args, "--resamples", "5", "-o", tmp_path / "x.html")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("calibrate: error: ") and fragment in lines[0], r.stderr
    assert not (tmp_path / "x.html").exists()


def test_expected_coverage_range_matches_a_simulation(files, report):
    from calibrate.report.beyond import expected_coverage_range

    rng = np.random.default_rng(0)
    # a small calibration set: far wider than the binomial range of the evaluation rows alone
    # ([0.855, 0.94] here), so the calibration draw must be in the law
    n_cal, n_eval, alpha = 19, 200, 0.1
    cov = [np.mean(rng.random(n_eval) <= conformal.conformal_quantile(rng.random(n_cal), alpha))
           for _ in range(4000)]
    lo, hi = expected_coverage_range(n_cal, n_eval, alpha)
    ref = np.quantile(cov, [0.025, 0.975])
    assert abs(lo - ref[0]) <= 2.0 / n_eval and abs(hi - ref[1]) <= 2.0 / n_eval
    assert expected_coverage_range(5, 10, 0.01) == (1.0, 1.0)  # r > n: full sets
    assert report[1]["conformal"]["expected_coverage_range"] == list(expected_coverage_range(600, 800, 0.1))


def test_best_marks_mark_ties_at_the_shown_precision():
    from calibrate.report.beyond import best_marks

    assert best_marks({"a": 0.12341, "b": 0.12344, "c": 0.2}, digits=4) == {"a": "better tie", "b": "better tie", "c": ""}
    assert best_marks({"a": 0.1, "b": 0.2}) == {"a": "better", "b": ""}
    assert best_marks({"a": 0.1, "b": 0.2}, lower_is_better=False) == {"a": "", "b": "better"}
    assert best_marks({"a": 0.1}) == {"a": ""}  # nothing to compare


def test_optimal_aurc_closed_form_equals_the_sum():
    cases = [(0, 5), (5, 5), (3, 10), (1, 1), (997, 1000), (123_456, 200_000)]
    for c, n in cases:
        i = np.arange(1, n + 1, dtype=np.float64)
        assert selective._aurc_optimal(c, n) == pytest.approx(np.sum(np.maximum(i - c, 0.0) / i) / n,
                                                              rel=1e-12, abs=1e-15)
    many = selective._aurc_optimal(np.array([c for c, _ in cases]), np.array([n for _, n in cases]))
    np.testing.assert_allclose(many, [selective._aurc_optimal(c, n) for c, n in cases], rtol=1e-15)
    assert selective._aurc_optimal(0, 0) == 0.0


def test_grouped_numbers_with_one_group_per_distinct_score_are_the_exact_numbers():
    c, ok = tied_scores(300, seed=4)
    err, cor = selective_rs._contiguous_groups(c, ok.astype(float), 10_000)  # 13 distinct scores: one group each
    v = selective_rs._grouped_numbers(err[None], cor[None], (0.8, 0.9), np.array([0.1, 0.5, 1.0]))
    assert v["aurc"][0] == pytest.approx(selective.aurc(c, ok), abs=1e-14)
    assert v["eaurc"][0] == pytest.approx(selective.eaurc(c, ok), abs=1e-14)
    assert v["augrc"][0] == pytest.approx(selective.augrc(c, ok), abs=1e-14)
    assert v["risk@0.8"][0] == pytest.approx(selective.risk_at_coverage(c, ok, 0.8), abs=1e-14)


def test_grouped_selective_intervals_match_the_row_bootstrap():
    """Group-count Poisson resamples (shifted by the grouping offset) against row resamples:
    the same estimates, and interval ends within Monte Carlo error of each other."""
    rng = np.random.default_rng(11)
    n = 20_000
    c = rng.beta(5, 2, n)
    ok = rng.random(n) < c
    rows = selective_rs.selective_intervals(c, ok, n_resamples=1500, scheme="rows", seed=2)
    groups = selective_rs.selective_intervals(c, ok, n_resamples=1500, scheme="groups", seed=2, max_groups=512)
    assert groups["scheme"] == "groups" and groups["n_groups"] == 512 and rows["n_groups"] is None
    for k in ("aurc", "eaurc", "augrc", "risk@0.8", "risk@0.9"):
        assert groups[k].estimate == rows[k].estimate
        width = rows[k].high - rows[k].low
        assert groups[k].low == pytest.approx(rows[k].low, abs=0.1 * width)
        assert groups[k].high == pytest.approx(rows[k].high, abs=0.1 * width)
    width = rows["curve"]["high"] - rows["curve"]["low"]
    assert np.all(np.abs(groups["curve"]["low"] - rows["curve"]["low"]) <= 0.25 * width + 2e-3)


def test_selective_intervals_switch_to_group_counts_past_the_row_limit(monkeypatch):
    c, ok = tied_scores(400, seed=2)
    assert selective_rs.selective_intervals(c, ok, n_resamples=20)["scheme"] == "rows"
    monkeypatch.setattr(selective_rs, "AUTO_ROW_RESAMPLING_MAX_ROWS", 100)
    assert selective_rs.selective_intervals(c, ok, n_resamples=20)["scheme"] == "groups"
    with pytest.raises(selective_rs.InputError, match="scheme"):
        selective_rs.selective_intervals(c, ok, scheme="bogus")
