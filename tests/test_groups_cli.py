"""--group-by on calibrate evaluate / report, the group-column readers, the report's groups section."""

import csv
import json

import numpy as np
import pytest
from conftest import make_logits, run_cli

from calibrate.groups import GROUP_METRICS, group_metrics
from calibrate.io.group_columns import parse_group_by, read_group_columns


@pytest.fixture
def data(tmp_path):
    z, y = make_logits(n=500, k=3, seed=1)
    rng = np.random.default_rng(2)
    site = rng.choice(["north", "south", "east"], 500)
    age = rng.integers(0, 2, 500)
    path = tmp_path / "d.npz"
    np.savez(path, logits=z, labels=y)
    meta = tmp_path / "meta.csv"
    with open(meta, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["site", "age"])
        w.writerows(zip(site, age))
    return {"z": z, "y": y, "site": site, "age": age, "npz": path, "meta": meta, "dir": tmp_path}


def test_evaluate_json_groups_equal_group_metrics(data):
    code, out, err = run_cli("evaluate", data["npz"], "--group-by", "site,age", "--groups", data["meta"],
                             "--resamples", "50", "--json")
    assert code == 0, err
    res = json.loads(out)
    ref = group_metrics(data["z"], data["y"], {"site": data["site"], "age": data["age"]}, n_resamples=50)
    g = res["groups"]
    assert g["columns"] == ["site", "age"] and g["n_groups"] == 6
    by_name = {e["group"]: e for e in g["groups"]}
    for i in range(len(ref.labels)):
        e = by_name[ref.name(i)]
        assert e["n"] == ref.counts[i]
        for j, m in enumerate(GROUP_METRICS):
            assert e["metrics"][m]["estimate"] == pytest.approx(ref.values[i, j], abs=1e-12)
        assert e["metrics"]["ece"]["interval"] == pytest.approx([ref.low[i, 1], ref.high[i, 1]], abs=1e-12)
    assert g["overall"]["ece"]["estimate"] == pytest.approx(res["ece"], abs=1e-12)


def test_evaluate_text_prints_the_group_table(data):
    code, out, err = run_cli("evaluate", data["npz"], "--group-by", "site", "--groups", data["meta"],
                             "--resamples", "20")
    assert code == 0, err
    assert "groups by site: 3 groups" in out
    assert "site=north" in out and "(all)" in out and "gap interval" in out


def test_evaluate_with_calibrator_groups_use_calibrated_probabilities(data):
    from calibrate import TemperatureScaling

    cal = TemperatureScaling().fit(data["z"], data["y"])
    cal.save(data["dir"] / "t.json")
    code, out, err = run_cli("evaluate", data["npz"], "--calibrator", data["dir"] / "t.json", "--group-by", "site",
                             "--groups", data["meta"], "--resamples", "10", "--json")
    assert code == 0, err
    res = json.loads(out)
    lp = cal.predict_log_proba(data["z"], kind="logits")
    ref = group_metrics(lp, data["y"], {"site": data["site"]}, kind="log_probs", n_resamples=0)
    assert res["groups"]["overall"]["nll"]["estimate"] == pytest.approx(ref.overall[GROUP_METRICS.index("nll")],
                                                                        abs=1e-12)


def test_group_columns_from_a_csv_data_file(data):
    path = data["dir"] / "d.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["c0", "c1", "c2", "label", "site"])
        for row, lab, s in zip(data["z"], data["y"], data["site"]):
            w.writerow([*row, lab, s])
    code, out, err = run_cli("evaluate", path, "--group-by", "site", "--resamples", "10", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["k"] == 3
    assert sorted(e["group"] for e in res["groups"]["groups"]) == ["site=east", "site=north", "site=south"]


def test_group_columns_from_npz(data):
    path = data["dir"] / "g.npz"
    np.savez(path, site=data["site"], age=data["age"])
    code, out, err = run_cli("evaluate", data["npz"], "--group-by", "age", "--groups", path, "--resamples", "10",
                             "--json")
    assert code == 0, err
    assert json.loads(out)["groups"]["n_groups"] == 2


@pytest.mark.parametrize("args, message", [
    (["--group-by", "sex"], "meta.csv: no column 'sex' (--group-by); the header has: site, age"),
    (["--group-by", "site,site"], "--group-by: column 'site' named twice"),
])
def test_bad_group_columns_one_line_errors(data, args, message):
    code, out, err = run_cli("evaluate", data["npz"], *args, "--groups", data["meta"])
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_row_count_mismatch_is_refused(data):
    short = data["dir"] / "short.csv"
    short.write_text("".join(open(data["meta"]).readlines()[:101]))
    code, out, err = run_cli("evaluate", data["npz"], "--group-by", "site", "--groups", short)
    assert code == 2
    assert "short.csv: column 'site' has 100 rows, the data has 500" in err and err.count("\n") == 1


def test_group_by_without_group_columns_is_refused(data):
    code, out, err = run_cli("evaluate", data["npz"], "--group-by", "site")
    assert code == 2 and "needs --groups FILE" in err
    code, out, err = run_cli("evaluate", data["npz"], "--groups", data["meta"])
    assert code == 2 and "--groups FILE needs --group-by" in err


def test_parquet_without_pyarrow_says_what_to_install(data, monkeypatch):
    import builtins

    path = data["dir"] / "g.parquet"
    path.write_bytes(b"PAR1")
    real = builtins.__import__

    def no_pyarrow(name, *a, **kw):
        if name == "pyarrow":
            raise ImportError(name)
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    code, out, err = run_cli("evaluate", data["npz"], "--group-by", "site", "--groups", path)
    assert code == 2
    assert "reading Parquet needs pandas and pyarrow: pip install" in err and err.count("\n") == 1


def test_parquet_columns_when_pyarrow_is_installed(data):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    path = data["dir"] / "g.parquet"
    pd.DataFrame({"site": data["site"], "age": data["age"]}).to_parquet(path)
    cols = read_group_columns(path, ["site", "age"], 500)
    assert cols["site"].tolist() == data["site"].tolist()
    assert cols["age"].tolist() == data["age"].tolist()


def test_csv_group_values_are_typed(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("a,b,c\n1,0.5,x\n2,1.5,y\n")
    cols = read_group_columns(path, ["a", "b", "c"], 2)
    assert cols["a"].dtype == np.int64 and cols["b"].dtype == np.float64 and cols["c"].tolist() == ["x", "y"]
    assert parse_group_by(" a , b ") == ["a", "b"]


@pytest.mark.slow
def test_report_has_a_groups_section_and_json(data):
    html, js = data["dir"] / "r.html", data["dir"] / "r.json"
    code, out, err = run_cli("report", data["npz"], "--fit-on", data["npz"], "--methods", "temperature",
                             "--group-by", "site", "--groups", data["meta"], "--resamples", "30", "-o", html,
                             "--json", js)
    assert code == 0, err
    text = html.read_text()
    assert "Calibration per group (site)" in text
    start = text.index("Calibration per group (site)")
    assert text.count("data:image/png", start, text.index("How this report was made")) == 4
    d = json.loads(js.read_text())
    assert set(d["groups"]) == {"uncalibrated", "temperature"}
    assert d["groups"]["uncalibrated"]["n_groups"] == 3


def test_groups_section_from_per_row_values_only():
    """The section takes (4, n) per-row values and group codes; small groups are marked, the
    table is sorted by ECE beyond the calibrated null, the panels are bounded."""
    from calibrate.metrics.groups import row_values
    from calibrate.report.groups import MAX_PANELS, groups_section

    z, y = make_logits(n=700, k=4, seed=3)
    g = np.repeat(np.arange(14), 50)
    g[:10] = 99  # a small group
    rows = row_values(z, y)
    section, data = groups_section({"p": rows}, {"g": g}, n_resamples=20)
    table = section["tables"][0]
    names = [r["cells"][0]["text"] for r in table["rows"]]
    assert names[0] == "(all rows)" and names[-1] == "g=99 (too small)"
    excess = [float(r["cells"][2]["text"]) - float(r["cells"][4]["text"]) for r in table["rows"][1:-1]]
    assert excess == sorted(excess, reverse=True)
    assert table["header"][4] == "ECE if calibrated"
    assert len(section["figures"]) == 2
    for fig in section["figures"]:
        assert fig["width"] <= 1000 and fig["height"] <= 900
    assert data["p"]["groups"][-1]["too_small"] is True
    assert MAX_PANELS == 6


def _write_meta(path, site):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["site"])
        w.writerows([s] for s in site)


def test_report_fit_groups_compares_a_grouped_temperature_with_the_global_one(tmp_path):
    from calibrate.calibrators import GroupedCalibrator, TemperatureScaling
    from calibrate.resampling.grouped import grouped_comparison

    rng = np.random.default_rng(5)
    parts = {}
    for name, n in (("val", 900), ("test", 900)):
        site = rng.choice(["a", "b", "c"], n)
        z = rng.normal(0, 2, (n, 3))
        p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        y = (rng.random(n)[:, None] > np.cumsum(p, 1)).sum(1)
        z = z * np.select([site == "a", site == "b"], [1.0, 3.0], 0.5)[:, None]  # per-site miscalibration
        np.savez(tmp_path / f"{name}.npz", logits=z, labels=y)
        _write_meta(tmp_path / f"{name}.csv", site)
        parts[name] = (z, y, site)
    code, out, err = run_cli("report", tmp_path / "test.npz", "--fit-on", tmp_path / "val.npz", "--methods",
                             "temperature", "--group-by", "site", "--groups", tmp_path / "test.csv", "--fit-groups",
                             tmp_path / "val.csv", "--resamples", "50", "-o", tmp_path / "r.html", "--json",
                             tmp_path / "r.json")
    assert code == 0, err
    d = json.loads((tmp_path / "r.json").read_text())["grouped_recalibration"]
    zv, yv, sv = parts["val"]
    keys_v = np.array([f"site={s}" for s in sv], dtype=object)
    keys_t = np.array([f"site={s}" for s in parts["test"][2]], dtype=object)
    glob = TemperatureScaling().fit(zv, yv)
    ref = grouped_comparison(glob, GroupedCalibrator("temperature").fit(zv, yv, keys_v), parts["test"][0],
                             parts["test"][1], keys_t, n_resamples=50)
    assert [r["group"] for r in d["groups"]] == [r["group"] for r in ref["groups"]]
    for a, b in zip(d["groups"], ref["groups"]):
        assert a["grouped"]["nll"] == pytest.approx(b["grouped"]["nll"], abs=1e-12)
    assert d["overall"]["difference"]["nll"]["estimate"] < 0  # separate temperatures help here
    assert "Per-group recalibration" in (tmp_path / "r.html").read_text()


def test_fit_groups_without_fit_on_is_a_one_line_error(data):
    code, out, err = run_cli("report", data["npz"], "--group-by", "site", "--groups", data["meta"], "--fit-groups",
                             data["meta"], "-o", data["dir"] / "r.html")
    assert code == 2 and "--fit-groups FILE needs --group-by" in err and "Traceback" not in err
    assert not (data["dir"] / "r.html").exists()
