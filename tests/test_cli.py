"""The command line: each command, and each bad-input case (one line, exit 2, no traceback,
existing output untouched). Commands run in a subprocess, as a user runs them."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import make_logits

import calibrate


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "calibrate.cli", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, env={**os.environ, "CALIBRATE_DEBUG": ""},
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    z, y = make_logits(n=2000, k=5, temperature=2.5, seed=0)
    np.savez(d / "val.npz", logits=z.astype(np.float32), labels=y)
    z2, y2 = make_logits(n=3000, k=5, temperature=2.5, seed=1)
    np.savez(d / "test.npz", logits=z2.astype(np.float32), labels=y2)
    return d


def assert_clean_error(r, *fragments):
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("calibrate: error: ")
    assert "Traceback" not in r.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


# --------------------------------------------------------------------- commands
@pytest.mark.parametrize("method", ["temperature", "vector", "matrix", "platt", "isotonic", "histogram", "bbq"])
def test_fit_writes_a_calibrator_and_prints_before_after(data, tmp_path, method):
    out = tmp_path / "cal.json"
    r = run("fit", data / "val.npz", "--method", method, "-o", out)
    assert r.returncode == 0, r.stderr
    assert "NLL" in r.stdout and "->" in r.stdout and method in r.stdout
    assert calibrate.load(out).name == method


def test_fit_temperature_matches_the_python_api(data, tmp_path):
    run("fit", data / "val.npz", "-o", tmp_path / "cal.json")
    f = np.load(data / "val.npz")
    t = calibrate.TemperatureScaling().fit(f["logits"], f["labels"]).temperature_
    assert calibrate.load(tmp_path / "cal.json").temperature_ == t


def test_apply_writes_calibrated_probs_and_labels(data, tmp_path):
    run("fit", data / "val.npz", "-o", tmp_path / "cal.json")
    r = run("apply", tmp_path / "cal.json", data / "test.npz", "-o", tmp_path / "out.npz")
    assert r.returncode == 0, r.stderr
    out = np.load(tmp_path / "out.npz")
    cal = calibrate.load(tmp_path / "cal.json")
    f = np.load(data / "test.npz")
    np.testing.assert_array_equal(out["probs"], cal.predict_proba(f["logits"]))
    np.testing.assert_array_equal(out["labels"], f["labels"])


def test_evaluate_json_has_the_promised_keys_and_values(data):
    r = run("evaluate", data / "test.npz", "--json", "--bins", "10")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    f = np.load(data / "test.npz")
    p = calibrate.softmax(f["logits"])
    assert res["ece"] == pytest.approx(calibrate.metrics.ece(p, f["labels"], 10))
    assert res["nll"] == pytest.approx(calibrate.metrics.nll_from_logits(f["logits"], f["labels"]))
    for key in ("accuracy", "ece", "nll", "brier", "mce", "classwise_ece", "ece_mass", "ece_l2_debiased"):
        assert key in res


def test_evaluate_with_calibrator_improves_ece(data, tmp_path):
    run("fit", data / "val.npz", "-o", tmp_path / "cal.json")
    before = json.loads(run("evaluate", data / "test.npz", "--json").stdout)
    after = json.loads(run("evaluate", data / "test.npz", "--json", "--calibrator", tmp_path / "cal.json").stdout)
    assert after["ece"] < before["ece"] and after["accuracy"] == before["accuracy"]


def test_evaluate_human_table(data):
    r = run("evaluate", data / "test.npz")
    assert r.returncode == 0 and "ECE" in r.stdout and "Brier" in r.stdout


def test_every_input_format_gives_the_same_numbers(data, tmp_path):
    torch = pytest.importorskip("torch")
    f = np.load(data / "test.npz")
    z, y = f["logits"], f["labels"]
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    torch.save({"logits": torch.tensor(z), "labels": torch.tensor(y)}, tmp_path / "d.pt")
    np.savetxt(tmp_path / "d.csv", np.column_stack([z, y]), delimiter=",", fmt="%.9g",
               header=",".join([f"c{j}" for j in range(z.shape[1])] + ["label"]), comments="")
    np.savez(tmp_path / "renamed.npz", out=z, target=y)
    p = calibrate.softmax(z)
    np.savez(tmp_path / "probs.npz", probs=p, labels=y)
    ref = json.loads(run("evaluate", data / "test.npz", "--json").stdout)
    variants = [
        [tmp_path / "z.npy", "--labels", tmp_path / "y.npy"],
        [tmp_path / "d.pt"],
        [tmp_path / "d.csv"],
        [tmp_path / "renamed.npz", "--logits-key", "out", "--labels-key", "target"],
        [tmp_path / "probs.npz", "--probs"],
    ]
    for v in variants:
        r = run("evaluate", *v, "--json")
        assert r.returncode == 0, (v, r.stderr)
        got = json.loads(r.stdout)
        for key in ("accuracy", "ece", "nll", "brier"):
            assert got[key] == pytest.approx(ref[key], rel=1e-6), (v, key)


def test_huge_logits_work(tmp_path):
    z, y = make_logits(n=500, k=4, temperature=1.0, seed=3)
    z = z / np.abs(z).max() * 1e4
    np.savez(tmp_path / "big.npz", logits=z, labels=y)
    r = run("fit", tmp_path / "big.npz", "-o", tmp_path / "cal.json")
    assert r.returncode == 0, r.stderr
    r = run("evaluate", tmp_path / "big.npz", "--json", "--calibrator", tmp_path / "cal.json")
    assert r.returncode == 0 and np.isfinite(json.loads(r.stdout)["nll"])


# --------------------------------------------------------------------- bad input
def _bad(tmp_path, name, **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


BAD_CASES = {
    "nan logits": (lambda z, y: dict(logits=np.where(np.arange(z.size).reshape(z.shape) == 7, np.nan, z), labels=y), ["'logits'", "finite"]),
    "inf logits": (lambda z, y: dict(logits=np.where(np.arange(z.size).reshape(z.shape) == 3, np.inf, z), labels=y), ["'logits'", "finite"]),
    "label out of range": (lambda z, y: dict(logits=z, labels=np.where(np.arange(y.size) == 5, 9, y)), ["'labels'", "[0, 5)"]),
    "negative label": (lambda z, y: dict(logits=z, labels=np.where(np.arange(y.size) == 5, -1, y)), ["'labels'", ">= 0"]),
    "fractional label": (lambda z, y: dict(logits=z, labels=y + 0.5), ["'labels'", "integer"]),
    "label 1e20": (lambda z, y: dict(logits=z, labels=np.where(np.arange(y.size) == 4, 1e20, y)), ["'labels'", "got 1e+20 at row 4"]),
    "object labels": (lambda z, y: dict(logits=z, labels=np.array([None] * y.size, dtype=object)), ["'labels'", "refusing"]),
    "length mismatch": (lambda z, y: dict(logits=z, labels=y[:-3]), ["'labels'", "expected 100 labels"]),
    "empty arrays": (lambda z, y: dict(logits=z[:0], labels=y[:0]), ["'logits'", "at least one"]),
    "missing key": (lambda z, y: dict(scores=z, labels=y), ["missing array 'logits'", "--logits-key"]),
    "wrong dimensions": (lambda z, y: dict(logits=z[:, :, None], labels=y), ["'logits'", "dimensions"]),
    "object array": (lambda z, y: dict(logits=np.array([object()] * 3, dtype=object), labels=y), ["refusing"]),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
@pytest.mark.parametrize("command", ["fit", "evaluate"])
def test_bad_data_is_one_clear_line(case, command, tmp_path):
    z, y = make_logits(n=100, k=5, seed=0)
    make, fragments = BAD_CASES[case]
    path = _bad(tmp_path, "bad.npz", **make(z, y))
    out = tmp_path / "cal.json"
    out.write_text("precious")
    args = ["fit", path, "-o", out] if command == "fit" else ["evaluate", path]
    r = run(*args)
    assert_clean_error(r, str(path), *fragments)
    assert out.read_text() == "precious"


def test_missing_file(tmp_path):
    assert_clean_error(run("evaluate", tmp_path / "nope.npz"), "nope.npz", "no such file")


@pytest.mark.parametrize("suffix", [".npz", ".npy", ".pt", ".csv"])
def test_truncated_file(data, tmp_path, suffix):
    torch = pytest.importorskip("torch")
    f = np.load(data / "test.npz")
    src = tmp_path / f"full{suffix}"
    if suffix == ".npz":
        np.savez(src, logits=f["logits"], labels=f["labels"])
    elif suffix == ".npy":
        np.save(src, f["logits"])
    elif suffix == ".pt":
        torch.save({"logits": torch.tensor(f["logits"]), "labels": torch.tensor(f["labels"])}, src)
    else:
        np.savetxt(src, np.column_stack([f["logits"], f["labels"]]), delimiter=",", header="a,b,c,d,e,label", comments="")
    blob = src.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(blob[: len(blob) // 2])
    extra = ["--labels", tmp_path / "y.npy"] if suffix == ".npy" else []
    np.save(tmp_path / "y.npy", f["labels"])
    assert_clean_error(run("evaluate", cut, *extra), str(cut))


def test_corrupt_bytes(tmp_path):
    p = tmp_path / "junk.npz"
    p.write_bytes(b"this is not a zip file at all")
    assert_clean_error(run("evaluate", p), "junk.npz", "not a readable")


def test_pickled_pt_is_refused_and_never_run(tmp_path):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"logits": Evil(), "labels": torch.zeros(3)}, tmp_path / "evil.pt")
    r = run("evaluate", tmp_path / "evil.pt")
    assert_clean_error(r, "evil.pt", "refusing")
    assert not marker.exists()


def test_pickled_npy_is_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "y.npy", np.zeros(1, int))
    assert_clean_error(run("evaluate", tmp_path / "obj.npy", "--labels", tmp_path / "y.npy"), "obj.npy", "refusing")


def test_unwritable_output_path(data, tmp_path):
    (tmp_path / "afile").write_text("x")
    r = run("fit", data / "val.npz", "-o", tmp_path / "afile" / "cal.json")
    assert_clean_error(r, "cal.json", "not a directory")
    r = run("fit", data / "val.npz", "-o", tmp_path / "nodir" / "cal.json")
    assert_clean_error(r, "cal.json", "does not exist")


def test_apply_keeps_existing_output_on_bad_input(tmp_path, data):
    out = tmp_path / "out.npz"
    out.write_bytes(b"old")
    run("fit", data / "val.npz", "-o", tmp_path / "cal.json")
    _bad(tmp_path, "bad.npz", logits=np.full((3, 5), np.nan), labels=np.zeros(3, int))
    assert_clean_error(run("apply", tmp_path / "cal.json", tmp_path / "bad.npz", "-o", out))
    assert out.read_bytes() == b"old"


def test_apply_with_mismatched_classes(tmp_path, data):
    run("fit", data / "val.npz", "-o", tmp_path / "cal.json")
    _bad(tmp_path, "k3.npz", logits=np.zeros((3, 3)), labels=np.zeros(3, int))
    assert_clean_error(run("apply", tmp_path / "cal.json", tmp_path / "k3.npz", "-o", tmp_path / "o.npz"), "5 classes")


def test_corrupt_calibrator_file(tmp_path, data):
    (tmp_path / "cal.json").write_text('{"format": "calibrate.calibrator", "vers')
    assert_clean_error(run("apply", tmp_path / "cal.json", data / "test.npz", "-o", tmp_path / "o.npz"), "cal.json", "JSON")


def test_no_partial_file_is_left_when_writing(data, tmp_path):
    run("fit", data / "val.npz", "-o", tmp_path / "cal.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cal.json"]


def test_fit_apply_evaluate_do_not_import_the_report_layer(data, tmp_path):
    # matplotlib and Jinja2 cost about a second to import: only `report` needs them
    code = (
        "import sys; from calibrate.cli import main\n"
        f"main(['fit', r'{data / 'val.npz'}', '-o', r'{tmp_path / 'c.json'}'])\n"
        f"main(['apply', r'{tmp_path / 'c.json'}', r'{data / 'test.npz'}', '-o', r'{tmp_path / 'o.npz'}'])\n"
        f"main(['evaluate', r'{data / 'test.npz'}', '--calibrator', r'{tmp_path / 'c.json'}'])\n"
        "bad = [m for m in ('matplotlib', 'jinja2', 'calibrate.report') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_saved_logits_commands_do_not_import_torch(data, tmp_path):
    code = (
        "import sys; from calibrate.cli import main\n"
        f"main(['fit', r'{data / 'val.npz'}', '--method', 'isotonic', '-o', r'{tmp_path / 'c.json'}'])\n"
        f"main(['evaluate', r'{data / 'test.npz'}'])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
