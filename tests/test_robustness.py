"""Hostile and tired-user input, by category of what went wrong before (issue 12):
data loss, silently wrong answers, crashes instead of messages, unclear messages.

The command line runs in-process (``cli``) for speed; the few cases that need a real
process (exit codes of signals, a hard kill) use a subprocess.
"""

import io
import json
import os
import signal
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest
from conftest import make_logits, run_cli

import calibrate
from calibrate._core.validation import (
    CalibrationWarning,
    InputError,
    check_labels,
    check_sample_weight,
)
from calibrate.io import outputs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))



cli = run_cli


def one_error(code, err, *fragments):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("calibrate: error: "), err
    assert "Traceback" not in err
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    d = tmp_path_factory.mktemp("rob")
    z, y = make_logits(n=300, k=4, temperature=2.0, seed=0)
    np.savez(d / "val.npz", logits=z, labels=y)
    np.savez(d / "test.npz", logits=z[::-1].copy(), labels=y[::-1].copy())
    assert cli("fit", d / "val.npz", "-o", d / "cal.json")[0] == 0
    return d


def listing(path):
    return sorted(p.name for p in path.iterdir())


# =========================================================================== data loss
def test_report_writes_only_the_files_named(d, tmp_path):
    code, _, err = cli("report", d / "test.npz", "--calibrator", d / "cal.json", "--resamples", "20",
                       "-o", tmp_path / "r.html")
    assert code == 0, err
    assert listing(tmp_path) == ["r.html"]  # no JSON unless asked
    code, _, err = cli("report", d / "test.npz", "--calibrator", d / "cal.json", "--resamples", "20",
                       "-o", tmp_path / "r.html", "--json", tmp_path / "numbers.json")
    assert code == 0, err
    assert listing(tmp_path) == ["numbers.json", "r.html"]
    numbers = json.loads((tmp_path / "numbers.json").read_text())
    assert set(numbers["metrics"]) == {"uncalibrated", "temperature"} and numbers["html"] == "r.html"


def test_the_report_json_never_replaces_the_calibrator_passed_in(d, tmp_path):
    cal = tmp_path / "report.json"
    cal.write_bytes((d / "cal.json").read_bytes())
    before = cal.read_bytes()
    code, _, err = cli("report", d / "test.npz", "--calibrator", cal, "--resamples", "20",
                       "-o", tmp_path / "report.html", "--json", cal)
    one_error(code, err, "report.json: is also an input")
    assert cal.read_bytes() == before and listing(tmp_path) == ["report.json"]


@pytest.mark.parametrize("how", ["same path", "hard link", "symbolic link", "relative path"])
def test_an_output_that_is_an_input_is_refused(d, tmp_path, how):
    src = tmp_path / "val.npz"
    src.write_bytes((d / "val.npz").read_bytes())
    if how == "same path":
        out = src
    elif how == "hard link":
        out = tmp_path / "hard.npz"
        os.link(src, out)
    elif how == "symbolic link":
        out = tmp_path / "sym.npz"
        out.symlink_to(src)
    else:
        out = os.path.relpath(src)
    before = src.read_bytes()
    code, _, err = cli("fit", src, "-o", out)
    one_error(code, err, "is also an input", "give another output name")
    assert src.read_bytes() == before


def test_apply_over_its_own_calibrator_or_data_is_refused(d, tmp_path):
    cal = tmp_path / "cal.json"
    cal.write_bytes((d / "cal.json").read_bytes())
    one_error(*cli("apply", cal, d / "test.npz", "-o", cal)[::2], "cal.json: is also an input")
    assert cal.read_bytes() == (d / "cal.json").read_bytes()


@pytest.mark.parametrize("kind", ["fifo", "directory", "device", "dangling symlink", "trailing slash"])
def test_an_output_that_is_not_a_regular_file_is_refused(d, tmp_path, kind):
    if kind == "fifo":
        out = tmp_path / "pipe"
        os.mkfifo(out)
        want = "is a FIFO (named pipe), not a regular file"
    elif kind == "directory":
        out = tmp_path / "adir"
        out.mkdir()
        want = "is a directory, not a regular file"
    elif kind == "device":
        out = "/dev/null"
        want = "is a character device, not a regular file"
    elif kind == "dangling symlink":
        out = tmp_path / "link.json"
        out.symlink_to(tmp_path / "missing" / "x.json")
        want = "is a symbolic link to"
    else:
        out = str(tmp_path / "newdir") + "/"
        want = "names a directory"
    code, _, err = cli("fit", d / "val.npz", "-o", out)
    one_error(code, err, want)
    if kind == "fifo":
        import stat

        assert stat.S_ISFIFO(os.stat(out).st_mode)  # still a FIFO, not replaced by a file
    if kind == "device":
        assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")


def test_an_output_named_twice_is_refused(d, tmp_path):
    code, _, err = cli("report", d / "test.npz", "--resamples", "20", "-o", tmp_path / "r.html",
                       "--json", tmp_path / "r.html")
    one_error(code, err, "is named twice as an output")
    assert listing(tmp_path) == []


def test_python_api_save_refuses_what_the_cli_refuses(d, tmp_path):
    cal = calibrate.load(d / "cal.json")
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(InputError, match=r"pipe: is a FIFO"):
        cal.save(tmp_path / "pipe")
    from calibrate.report import write_report

    with pytest.raises(InputError, match="is also an input"):
        write_report(d / "cal.json", "<html></html>", {}, json_path=tmp_path / "x.json", inputs=[d / "cal.json"])
    assert write_report(tmp_path / "r.html", "<html></html>") == [tmp_path / "r.html"]
    assert listing(tmp_path) == ["pipe", "r.html"]


def _fitted_temperature():
    z, y = make_logits(n=200, k=3, temperature=2.0, seed=1)
    return calibrate.TemperatureScaling().fit(z, y)


def test_save_never_replaces_the_processs_signal_handlers(tmp_path, monkeypatch):
    def on_int(signum, frame):
        pass

    def on_term(signum, frame):
        pass

    old_int, old_term = signal.signal(signal.SIGINT, on_int), signal.signal(signal.SIGTERM, on_term)
    calls = []
    try:
        monkeypatch.setattr(signal, "signal", lambda *a: calls.append(("signal", a)))
        if hasattr(signal, "pthread_sigmask"):
            monkeypatch.setattr(signal, "pthread_sigmask", lambda *a: calls.append(("pthread_sigmask", a)))
        cal = _fitted_temperature()
        cal.save(tmp_path / "cal.json")
        monkeypatch.undo()
        assert calls == []
        assert signal.getsignal(signal.SIGINT) is on_int
        assert signal.getsignal(signal.SIGTERM) is on_term
    finally:
        monkeypatch.undo()
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
    assert (tmp_path / "cal.json").read_text() == cal.to_json()
    assert calibrate.load(tmp_path / "cal.json").temperature_ == cal.temperature_
    assert listing(tmp_path) == ["cal.json"]


@pytest.mark.parametrize("where", ["fsync", "replace"])
def test_save_that_fails_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch, where):
    import errno

    out = tmp_path / "cal.json"
    out.write_text("old")

    def no_space(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, where, no_space)
    with pytest.raises(InputError) as e:
        _fitted_temperature().save(out)
    monkeypatch.undo()
    assert str(e.value) == f"{out}: cannot write ({os.strerror(errno.ENOSPC)})"
    assert out.read_text() == "old"
    assert listing(tmp_path) == ["cal.json"]


def test_replacing_an_output_keeps_its_permissions(d, tmp_path):
    out = tmp_path / "cal.json"
    out.write_text("old")
    os.chmod(out, 0o640)
    assert cli("fit", d / "val.npz", "-o", out)[0] == 0
    assert os.stat(out).st_mode & 0o777 == 0o640 and calibrate.load(out).name == "temperature"


def _pair(tmp_path, old=True):
    a, b = tmp_path / "r.html", tmp_path / "r.json"
    if old:
        a.write_text("old html")
        b.write_text("old json")
    return a, b


def test_a_failed_rename_rolls_the_set_back(tmp_path, monkeypatch):
    a, b = _pair(tmp_path)
    real = os.replace
    calls = []

    def flaky(src, dst):
        calls.append((str(src), str(dst)))
        if str(dst) == str(b) and str(src).endswith(".tmp"):  # the second new file cannot be placed
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(outputs.os, "replace", flaky)
    with pytest.raises(InputError, match=r"r.html: cannot write the outputs \(No space left on device\); "
                                         "the previous files were kept"):
        outputs.write_outputs({a: "new html", b: "new json"})
    monkeypatch.setattr(outputs.os, "replace", real)
    assert a.read_text() == "old html" and b.read_text() == "old json"
    assert listing(tmp_path) == ["r.html", "r.json"]  # no temporary, backup or journal left


def test_a_failed_write_leaves_no_temporary(tmp_path):
    a, b = _pair(tmp_path)

    def full_disk(fh):
        fh.write(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(InputError, match=r"r.json: cannot write \(No space left on device\)"):
        outputs.write_outputs({a: "new html", b: full_disk})
    assert a.read_text() == "old html" and b.read_text() == "old json"
    assert listing(tmp_path) == ["r.html", "r.json"]


_KILLER = """
import os, sys
sys.path.insert(0, {root!r})
from calibrate import outputs
real = os.replace
n = [0]
def replace(src, dst):
    real(src, dst)
    n[0] += 1
    if n[0] == {after}:
        os._exit(9)  # like kill -9 between two renames
outputs.os.replace = replace
outputs.write_outputs({{{a!r}: "new html", {b!r}: "new json"}})
"""


@pytest.mark.parametrize("after", [1, 2, 3, 4, 5])
def test_a_hard_kill_between_renames_never_leaves_a_mixed_pair_and_is_rolled_back(tmp_path, after):
    """Renames: 1-2 move the old pair aside, 3-4 put the new pair in, 5 marks the journal
    committed. Killed before 5 the old pair comes back; after it the new pair stays."""
    a, b = _pair(tmp_path)
    code = _KILLER.format(root=ROOT, after=after, a=str(a), b=str(b))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 9, r.stderr
    seen = {p.name: p.read_text() for p in (a, b) if p.exists()}
    assert not ({"old html", "old json"} & set(seen.values()) and {"new html", "new json"} & set(seen.values())), seen
    journal = tmp_path / ".r.html.calibrate-journal"
    assert journal.exists()  # the half-finished set is detectable
    assert outputs.recover(journal) is True
    want = ("new html", "new json") if after == 5 else ("old html", "old json")
    assert (a.read_text(), b.read_text()) == want
    assert listing(tmp_path) == ["r.html", "r.json"]
    # the next write of the set recovers by itself, then writes the new pair
    r = subprocess.run([sys.executable, "-c", code.replace("os._exit(9)", "pass")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert a.read_text() == "new html" and b.read_text() == "new json"
    assert listing(tmp_path) == ["r.html", "r.json"]


def test_a_journal_of_a_live_writer_is_left_alone(tmp_path):
    a, b = _pair(tmp_path)
    journal = tmp_path / ".r.html.calibrate-journal"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        journal.write_text(json.dumps({"format": "calibrate.output-journal", "phase": "writing", "pid": other.pid,
                                       "host": __import__("socket").gethostname(), "entries": []}))
        with pytest.raises(InputError, match=f"being written by process {other.pid} now"):
            outputs.write_outputs({a: "x", b: "y"})
    finally:
        other.kill()
        other.wait()
    assert a.read_text() == "old html"


_SLOW = """
import sys, time
sys.path.insert(0, {root!r})
from calibrate import outputs
def slow(fh):
    fh.write(b"partial")
    fh.flush()
    print("writing", flush=True)
    time.sleep(30)
try:
    outputs.write_outputs({{{a!r}: slow, {b!r}: "json"}})
except KeyboardInterrupt:
    sys.exit(130)
"""


def _default_sigint():
    # a test run started in the background by a non-interactive shell ignores SIGINT, and a
    # child inherits SIG_IGN (Python then installs no KeyboardInterrupt handler): reset it,
    # as in a terminal
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_writing_removes_the_temporaries(tmp_path, sig, code):
    a, b = _pair(tmp_path)
    p = subprocess.Popen([sys.executable, "-c", _SLOW.format(root=ROOT, a=str(a), b=str(b))],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    assert p.stdout.readline().strip() == "writing"
    assert any(n.endswith(".tmp") for n in os.listdir(tmp_path))
    p.send_signal(sig)
    assert p.wait(timeout=20) == code, p.stderr.read()
    assert listing(tmp_path) == ["r.html", "r.json"]
    assert a.read_text() == "old html" and b.read_text() == "old json"


def test_sigterm_during_a_cli_command_exits_143_and_leaves_nothing(d, tmp_path):
    z, y = make_logits(n=20000, k=10, seed=3)
    np.savez(tmp_path / "big.npz", logits=z, labels=y)
    p = subprocess.Popen([sys.executable, "-m", "calibrate.cli", "report", str(tmp_path / "big.npz"), "--fit-on",
                          str(tmp_path / "big.npz"), "--resamples", "20000", "-o", str(tmp_path / "r.html"),
                          "--json", str(tmp_path / "r.json")], stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert "fitting" in p.stderr.readline()  # it is working
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=60) == 143
    assert listing(tmp_path) == ["big.npz"]


# =========================================================================== silently wrong
def _tampered(d, tmp_path, method, mutate):
    z, y = make_logits(n=300, k=4, seed=0)
    cal = calibrate.get_calibrator(method).fit(z, y)
    doc = json.loads(cal.to_json())
    mutate(doc)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(doc))
    return path


TAMPER = {
    "negative temperature": ("temperature", lambda d: d["state"].update(temperature_=-1.0),
                             "field 'state.temperature_': expected a number > 0, got -1.0"),
    "zero temperature": ("temperature", lambda d: d["state"].update(temperature_=0),
                         "field 'state.temperature_': expected a number > 0, got 0.0"),
    "infinite temperature": ("temperature", lambda d: d["state"].update(temperature_={"__float__": "inf"}),
                             "field 'state.temperature_': expected a finite number > 0, got inf"),
    "temperature as a string": ("temperature", lambda d: d["state"].update(temperature_="2"),
                                "field 'state.temperature_': expected a number > 0, got '2'"),
    "missing temperature": ("temperature", lambda d: d["state"].pop("temperature_"),
                            "field 'state.temperature_': missing"),
    "extra state field": ("temperature", lambda d: d["state"].update(_log_proba=1),
                          "field 'state._log_proba': unknown field"),
    "extra attribute replacing a method": ("vector", lambda d: d["state"].update(predict_proba_=1),
                                           "field 'state.predict_proba_': unknown field"),
    "extra param": ("temperature", lambda d: d["params"].update(evil=1), "field 'params.evil': unknown field"),
    "extra top-level key": ("temperature", lambda d: d.update(code="x"), "field 'code': unknown field"),
    "version 2": ("temperature", lambda d: d.update(version=2), "field 'version': expected 1, got 2"),
    "method swapped": ("temperature", lambda d: d.update(method="vector"),
                       "field 'class': expected 'VectorScaling' for method 'vector'"),
    "vector weights of the wrong shape": ("vector", lambda d: d["state"]["weights_"].update(__ndarray__=[1.0, 2.0]),
                                          "field 'state.weights_': expected an array of shape (k,) with k = 4, got shape (2,)"),
    "matrix 3 x 4": ("matrix", lambda d: d["state"]["weights_"].update(__ndarray__=[[1.0] * 4] * 3),
                     "field 'state.weights_': expected an array of shape (k, k) with k = 4, got shape (3, 4)"),
    "ragged matrix": ("matrix", lambda d: d["state"]["weights_"].update(__ndarray__=[[1.0, 2.0], [1.0]]),
                      "not a regular 2-d list of numbers"),
    "object dtype": ("vector", lambda d: d["state"]["bias_"].update(dtype="object"),
                     "field 'state.bias_': expected dtype 'float64', got dtype 'object'"),
    "string in an array": ("vector", lambda d: d["state"]["bias_"]["__ndarray__"].__setitem__(0, "0"),
                           "field 'state.bias_'"),
    "non-monotone isotonic knots": ("isotonic", lambda d: d["state"]["maps_"][0]["x"]["__ndarray__"].reverse(),
                                    "field 'state.maps_[0].x': expected strictly increasing values"),
    "isotonic value 1.5": ("isotonic", lambda d: d["state"]["maps_"][2]["y"]["__ndarray__"].__setitem__(0, 1.5),
                           "field 'state.maps_[2].y': expected values >= 0 and <= 1, got 1.5"),
    "a map missing": ("isotonic", lambda d: d["state"]["maps_"].pop(),
                      "field 'state.maps_': expected a list of 4 (one per fitted map), got a list of 3"),
    "histogram values one short": ("histogram", lambda d: d["state"]["maps_"][1]["values"]["__ndarray__"].pop(),
                                   "field 'state.maps_[1].values': expected an array of shape (B,) with B = 15, got shape (14,)"),
    "histogram edge below 0": ("histogram", lambda d: d["state"]["maps_"][1]["edges"]["__ndarray__"].__setitem__(0, -0.1),
                               "field 'state.maps_[1].edges': expected values >= 0 and <= 1, got -0.1"),
    "BBQ weights not summing to 1": ("bbq", lambda d: d["state"]["maps_"][0]["weights"]["__ndarray__"].__setitem__(0, 2.0),
                                     "field 'state.maps_[0].weights': expected values"),
    "Platt of the wrong length": ("platt", lambda d: d["state"]["a_"].update(__ndarray__=[1.0]),
                                  "field 'state.a_': expected an array of shape (c,) with c = 4, got shape (1,)"),
    "min_prob out of range": ("histogram", lambda d: d["params"].update(min_prob=0.7),
                              "field 'params.min_prob': expected a number > 0 and < 0.5, got 0.7"),
    "n_classes 1e30": ("temperature", lambda d: d["state"].update(n_classes_=1e30),
                       "field 'state.n_classes_': expected an integer >= 2 and <= 1e+06"),
    "n_classes disagreeing with the arrays": ("vector", lambda d: d["state"].update(n_classes_=5),
                                              "field 'state.weights_': expected an array of shape (k,) with k = 5, got shape (4,)"),
    "bool for a number": ("temperature", lambda d: d["state"].update(temperature_=True),
                          "expected a number > 0, got true"),
}


@pytest.mark.parametrize("case", list(TAMPER))
def test_a_tampered_calibrator_file_is_refused_naming_the_field(d, tmp_path, case):
    method, mutate, message = TAMPER[case]
    path = _tampered(d, tmp_path, method, mutate)
    with pytest.raises(InputError) as e:
        calibrate.load(path)
    assert str(e.value).startswith(f"{path}: "), e.value
    assert message in str(e.value), e.value


def test_a_tampered_file_is_one_line_exit_2_on_the_command_line(d, tmp_path):
    path = _tampered(d, tmp_path, "temperature", lambda doc: doc["state"].update(temperature_=-2.0))
    code, _, err = cli("apply", path, d / "test.npz", "-o", tmp_path / "o.npz")
    assert one_error(code, err) == (f"calibrate: error: {path}: field 'state.temperature_': expected a number > 0, "
                                    "got -2.0")
    assert not (tmp_path / "o.npz").exists()


@pytest.mark.parametrize("method", calibrate.calibrators.available_methods())
def test_every_calibrator_declares_a_schema_its_own_files_pass(method):
    z, y = make_logits(n=400, k=3, seed=5)
    for k in (2, 3):
        cal = calibrate.get_calibrator(method).fit(z[:, :k], y % k)
        back = calibrate.Calibrator.from_dict(json.loads(cal.to_json()), "x.json")
        assert set(back.fitted_state()) == set(cal.fitted_state())
        np.testing.assert_array_equal(back.predict_proba(z[:, :k]), cal.predict_proba(z[:, :k]))


def test_attributes_are_set_only_from_declared_fields(d):
    doc = json.loads(calibrate.load(d / "cal.json").to_json())
    cal = calibrate.Calibrator.from_dict(doc, "cal.json")
    assert set(vars(cal)) == set(calibrate.TemperatureScaling().get_params()) | set(doc["state"])


@pytest.mark.parametrize("method", calibrate.calibrators.available_methods())
def test_a_failed_refit_leaves_the_fitted_calibrator_as_it_was(method, monkeypatch):
    z, y = make_logits(n=300, k=4, seed=0)
    cal = calibrate.get_calibrator(method).fit(z, y)
    before = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(cal).items()}
    p = cal.predict_proba(z)
    with pytest.raises(InputError):
        cal.fit(z[:, :3] * 5, np.where(y == 3, 2, y)[:10])  # wrong number of labels
    real = type(cal)._fit

    def fails_at_the_end(self, z, y):
        real(self, z, y)  # every fitted attribute replaced, then a failure
        raise RuntimeError("optimiser failed")

    monkeypatch.setattr(type(cal), "_fit", fails_at_the_end)
    with pytest.raises(RuntimeError):
        cal.fit(z[:, :3] * 3, np.where(y == 3, 0, y))
    assert set(vars(cal)) == set(before)
    for k, v in before.items():
        assert type(vars(cal)[k]) is type(v)
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(vars(cal)[k], v)
        elif not isinstance(v, list):
            assert vars(cal)[k] == v
    monkeypatch.undo()
    np.testing.assert_array_equal(cal.predict_proba(z), p)


def test_a_failed_first_fit_leaves_the_calibrator_unfitted():
    cal = calibrate.TemperatureScaling(objective="bogus")
    with pytest.raises(InputError):
        cal.fit(*make_logits(n=100, k=3))
    assert not cal.is_fitted() and set(vars(cal)) == {"objective", "bounds", "n_bins"}


def test_a_fit_interrupted_by_ctrl_c_leaves_the_object_as_it_was(monkeypatch):
    z, y = make_logits(n=300, k=4, seed=0)
    cal = calibrate.TemperatureScaling().fit(z, y)
    t = cal.temperature_

    def interrupted(self, z, y):
        self.temperature_ = 123.0
        raise KeyboardInterrupt

    monkeypatch.setattr(calibrate.TemperatureScaling, "_fit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cal.fit(z * 2, y)
    assert cal.temperature_ == t


def test_csv_index_column_is_refused_unless_named(tmp_path):
    z, y = make_logits(n=20, k=3, seed=1)
    body = "".join(f"{i}," + ",".join(f"{v:.6g}" for v in r) + f",{c}\n" for i, (r, c) in enumerate(zip(z, y)))
    (tmp_path / "a.csv").write_text(",c0,c1,c2,label\n" + body)  # pandas' to_csv with its index
    code, _, err = cli("evaluate", tmp_path / "a.csv")
    one_error(code, err, "column 1 (has no name) looks like a row index, not a class", "--index-col")
    (tmp_path / "b.csv").write_text("n,c0,c1,c2,label\n" + body)
    code, _, err = cli("evaluate", tmp_path / "b.csv")
    one_error(code, err, "column 'n' counts the rows (0, 1, 2, ...): it is an index", "--index-col 'n'")
    code, out, err = cli("evaluate", tmp_path / "b.csv", "--index-col", "n", "--json")
    assert code == 0, err
    assert json.loads(out)["k"] == 3


@pytest.mark.parametrize("extra,message", [
    ("weight", "column 'weight' is not a class score"),
    ("target", "column 'target' looks like the labels"),
    ("pred", "column 'pred' is not a class score"),
    ("copy", "column 'copy' is a copy of the label column"),
    ("argmax_col", "column 'argmax_col' holds the predicted class"),
])
def test_csv_extra_columns_are_not_taken_as_classes(tmp_path, extra, message):
    z, y = make_logits(n=30, k=3, seed=2)
    col = {"weight": np.full(30, 0.5), "target": y, "pred": z.argmax(1), "copy": y, "argmax_col": z.argmax(1)}[extra]
    body = "".join(",".join(f"{v:.6g}" for v in r) + f",{e:g},{c}\n" for r, e, c in zip(z, col, y))
    (tmp_path / "x.csv").write_text(f"c0,c1,c2,{extra},label\n" + body)
    one_error(*cli("evaluate", tmp_path / "x.csv")[::2], "x.csv", message)
    code, out, err = cli("evaluate", tmp_path / "x.csv", "--class-columns", "c0,c1,c2", "--json")
    one_error(code, err, f"column '{extra}' is neither a class column (--class-columns)")


def test_csv_class_columns_select_and_order(tmp_path):
    z, y = make_logits(n=30, k=3, seed=2)
    body = "".join(",".join(f"{v:.9g}" for v in r) + f",{c}\n" for r, c in zip(z, y))
    (tmp_path / "x.csv").write_text("a,b,c,label\n" + body)
    code, out, err = cli("evaluate", tmp_path / "x.csv", "--class-columns", "c,b,a", "--json")
    assert code == 0, err
    ref = calibrate.metrics.nll_from_logits(z[:, ::-1], y)  # labels index the columns as listed
    assert json.loads(out)["nll"] == pytest.approx(ref, rel=1e-7)


def test_probabilities_passed_as_logits_warn_and_the_flag_settles_it(d, tmp_path):
    z, y = make_logits(n=200, k=4, seed=4)
    p = calibrate.softmax(z)
    np.savez(tmp_path / "p.npz", logits=p, labels=y)
    np.savez(tmp_path / "lp.npz", logits=np.log(p), labels=y)
    code, _, err = cli("evaluate", tmp_path / "p.npz")
    assert code == 0
    assert err.strip() == (f"calibrate: warning: {tmp_path / 'p.npz'}: 'logits': these look like probabilities "
                           "(every row in [0, 1], summing to 1), not logits; say which they are: --probs / "
                           "kind='probs', or --logits / kind='logits' to keep them as logits")
    code, _, err = cli("evaluate", tmp_path / "lp.npz")
    assert code == 0 and "these look like log-probabilities" in err and "--log-probs" in err
    for args in (["--logits"], ["--log-probs"]):
        code, _, err = cli("evaluate", tmp_path / "lp.npz", *args)
        assert code == 0 and err == "", err
    code, out, err = cli("evaluate", tmp_path / "p.npz", "--probs", "--logits-key", "logits", "--json")
    assert code == 0 and err == ""
    assert json.loads(out)["nll"] == pytest.approx(calibrate.metrics.nll_from_logits(z, y))
    code, _, err = cli("evaluate", tmp_path / "p.npz", "--log-probs")
    one_error(code, err, "expected log-probabilities (each row's logsumexp 0)")
    # once stated, every command runs without a warning (the log of probabilities is not re-guessed)
    for method in ("temperature", "vector"):
        code, _, err = cli("fit", tmp_path / "p.npz", "--probs", "--logits-key", "logits", "--method", method,
                           "-o", tmp_path / "c.json")
        assert code == 0 and err == "", err
    for args in (["evaluate", tmp_path / "p.npz", "--calibrator", tmp_path / "c.json"],
                 ["apply", tmp_path / "c.json", tmp_path / "p.npz", "-o", tmp_path / "o.npz"],
                 ["report", tmp_path / "p.npz", "--calibrator", tmp_path / "c.json", "--resamples", "10",
                  "-o", tmp_path / "r.html"],
                 ["report", tmp_path / "p.npz", "--fit-on", tmp_path / "p.npz", "--methods", "temperature",
                  "--resamples", "10", "-o", tmp_path / "r.html"]):
        code, _, err = cli(*args, "--probs", "--logits-key", "logits")
        assert code == 0 and "warning" not in err, err


def test_the_python_api_warns_the_same_and_takes_kind():
    z, y = make_logits(n=200, k=4, seed=4)
    p = calibrate.softmax(z)
    with pytest.warns(CalibrationWarning, match="look like probabilities"):
        calibrate.TemperatureScaling().fit(p, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = calibrate.TemperatureScaling().fit(p, y, kind="probs")
        b = calibrate.TemperatureScaling().fit(z, y)
        calibrate.TemperatureScaling().fit(np.log(p), y, kind="log_probs")
    assert a.temperature_ == pytest.approx(b.temperature_, rel=1e-9)
    with pytest.warns(CalibrationWarning, match="log-probabilities"):
        a.predict_proba(np.log(p))
    with pytest.raises(InputError, match="kind: expected one of"):
        a.predict_proba(z, kind="logit")


def test_ordinary_logits_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for seed in range(5):
            z, y = make_logits(n=500, k=5, seed=seed)
            calibrate.TemperatureScaling().fit(z, y)
            calibrate.VectorScaling().fit(z, y)


def test_vector_scaling_on_separable_data_warns_that_it_diverges():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(30, 3))
    y = z.argmax(1)  # separable: the weights can grow without bound
    with pytest.warns(CalibrationWarning, match=r"VectorScaling: the fit diverges: .* use reg > 0"):
        v = calibrate.VectorScaling().fit(z, y)
    assert v.diverged_
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = calibrate.VectorScaling(reg=1e-2).fit(z, y)
    assert not r.diverged_ and np.abs(r.weights_).max() < np.abs(v.weights_).max() / 10
    # the warning is right: on new data from a noisy model the diverged fit is much worse
    zt = rng.normal(size=(3000, 3))
    pt = calibrate.softmax(3 * zt)
    yt = (pt.cumsum(1) > rng.random((3000, 1))).argmax(1)
    assert calibrate.metrics.nll_from_logits(v.predict_log_proba(zt), yt) > \
        2 * calibrate.metrics.nll_from_logits(r.predict_log_proba(zt), yt)


def test_a_diverged_fit_is_saved_and_loaded_with_its_flag(tmp_path):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(30, 3))
    with pytest.warns(CalibrationWarning):
        v = calibrate.VectorScaling().fit(z, z.argmax(1))
    v.save(tmp_path / "v.json")
    assert calibrate.load(tmp_path / "v.json").diverged_ is True


def test_labels_of_1e20_and_huge_unsigned_labels_are_refused():
    with pytest.raises(InputError, match=r"expected class indices in \[0, 4\) for 4 classes, got 1e\+20 at row 1"):
        check_labels(np.array([0.0, 1e20, 1.0]), 3, 4, "labels")
    with pytest.raises(InputError, match="got 9223372036854775813 at row 0"):
        check_labels(np.array([2**63 + 5, 1], dtype=np.uint64), 2, 4, "labels")
    with pytest.raises(InputError, match=r"expected integer class indices, got 2\.5 at row 0"):
        check_labels(np.array([2.5, 1.0]), 2, 4, "labels")
    with pytest.raises(InputError, match="expected integer class indices, got nan at row 1"):
        check_labels(np.array([1.0, np.nan]), 2, 4, "labels")


# =========================================================================== crashes
def _npy_header(shape, descr="<f8"):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_an_npz_header_claiming_terabytes_is_refused_before_loading(tmp_path):
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w") as zf:
        zf.writestr("logits.npy", _npy_header((10**9, 1000)) + b"\0" * 64)
        labels = io.BytesIO()
        np.save(labels, np.zeros(3, int))
        zf.writestr("labels.npy", labels.getvalue())
    line = one_error(*cli("evaluate", tmp_path / "bomb.npz")[::2])
    assert line == (f"calibrate: error: {tmp_path / 'bomb.npz'}: 'logits': the header declares shape "
                    "(1000000000, 1000) float64 (8 TB) but the file holds 64 bytes of data; the file is truncated "
                    "or corrupt: save it again")


def test_an_npy_header_beyond_memory_is_refused(tmp_path, monkeypatch):
    np.save(tmp_path / "z.npy", np.zeros((1000, 10)))
    np.save(tmp_path / "y.npy", np.zeros(1000, int))
    monkeypatch.setattr(calibrate._core.validation, "available_memory", lambda: 50_000)
    with pytest.raises(InputError, match=r"z.npy: the array of shape \(1000, 10\) float64 in its header needs "
                                         r"80 kB, more than the 50 kB of memory available"):
        calibrate.io.read_predictions(tmp_path / "z.npy", labels_path=tmp_path / "y.npy")


@pytest.mark.parametrize("where", ["data", "calibrator", "labels"])
def test_an_input_that_is_a_fifo_or_a_device_is_refused_instead_of_hanging(d, tmp_path, where):
    fifo = tmp_path / "in.npz"
    os.mkfifo(fifo)
    if where == "data":
        args, bad, want = ["evaluate", fifo], fifo, "is a FIFO (named pipe), not a regular file"
    elif where == "calibrator":
        args, bad, want = ["evaluate", d / "test.npz", "--calibrator", "/dev/zero"], "/dev/zero", \
            "is a character device, not a regular file; expected a JSON file"
    else:
        args, bad, want = ["evaluate", d / "test.npz", "--labels", "/dev/zero"], "/dev/zero", \
            "is a character device, not a regular file; expected a .npy file of labels"
    one_error(*cli(*args)[::2], f"{bad}: {want}")


def test_available_memory_is_a_positive_number():
    m = calibrate._core.validation.available_memory()
    assert m is None or m > 0


@pytest.mark.parametrize("args,message", [
    (["--bins", "100000000"], "argument --bins: expected at most 10,000 bins (the limit), got 100,000,000"),
    (["--bins", "1e8"], "argument --bins: expected at most 10,000 bins (the limit), got 100,000,000"),
    (["--bins", "0"], "argument --bins: expected a positive integer, got 0"),
    (["--bins", "2.5"], "argument --bins: expected a positive integer, got '2.5'"),
])
def test_bins_are_checked_before_allocating(d, args, message):
    one_error(*cli("evaluate", d / "test.npz", *args)[::2], message)


def test_resamples_are_limited(d, tmp_path):
    one_error(*cli("report", d / "test.npz", "--resamples", "1000000000", "-o", tmp_path / "r.html")[::2],
              "argument --resamples: expected at most 100,000 resamples (the limit), got 1,000,000,000")
    with pytest.raises(InputError, match="n_resamples: expected at most 100,000 resamples"):
        calibrate.bootstrap_ci("ece", np.full((3, 2), 0.5), np.zeros(3, int), n_resamples=10**9)
    with pytest.raises(InputError, match="n_bins: expected at most 10,000 bins"):
        calibrate.metrics.ece(np.full((3, 2), 0.5), np.zeros(3, int), 10**8)


def test_deeply_nested_json_is_a_clear_error(tmp_path):
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputError, match=r"deep.json: nested 100000 levels deep, more than the 64 allowed"):
        calibrate.load(tmp_path / "deep.json")
    (tmp_path / "deep2.json").write_text('{"format": "calibrate.calibrator", "a": ' + '{"b": ' * 70 + "1" + "}" * 71)
    with pytest.raises(InputError, match="nested 71 levels deep"):
        calibrate.load(tmp_path / "deep2.json")


def test_a_calibrator_file_missing_its_state_is_a_message_not_a_traceback(d, tmp_path):
    doc = json.loads((d / "cal.json").read_text())
    del doc["state"]
    (tmp_path / "c.json").write_text(json.dumps(doc))
    code, _, err = cli("apply", tmp_path / "c.json", d / "test.npz", "-o", tmp_path / "o.npz")
    one_error(code, err, "c.json: field 'state': expected an object, got nothing (missing)")


# =========================================================================== unclear messages
def test_pt_with_meta_sparse_or_pickled_content(tmp_path):
    torch = pytest.importorskip("torch")
    z, y = make_logits(n=50, k=3, seed=0)
    torch.save({"logits": torch.empty(50, 3, device="meta"), "labels": torch.tensor(y)}, tmp_path / "meta.pt")
    torch.save({"logits": torch.tensor(z).to_sparse(), "labels": torch.tensor(y)}, tmp_path / "sparse.pt")
    torch.save({"logits": torch.tensor(z), "labels": torch.tensor(y), "x": np.zeros(3)}, tmp_path / "np.pt")
    cases = {
        "meta.pt": "'logits' is a meta tensor (a shape without data); save the tensor with its values",
        "sparse.pt": "'logits' is a sparse_coo tensor; save a dense tensor: t.to_dense()",
        "np.pt": "refusing to load it: it holds Python objects, not only tensors and plain containers",
    }
    for name, message in cases.items():
        line = one_error(*cli("evaluate", tmp_path / name)[::2], f"{tmp_path / name}: {message}")
        assert "weights_only" not in line and "False" not in line


def test_torch_advice_to_load_unsafely_is_never_repeated(tmp_path):
    torch = pytest.importorskip("torch")

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    torch.save({"logits": Evil()}, tmp_path / "evil.pt")
    line = one_error(*cli("evaluate", tmp_path / "evil.pt")[::2])
    assert line == (f"calibrate: error: {tmp_path / 'evil.pt'}: refusing to load it: it holds Python objects, not "
                    "only tensors and plain containers (unsupported GLOBAL posix.system); save a dict of tensors: "
                    "torch.save({'logits': t, 'labels': y}, path)")
    from calibrate.io.readers import _torch_reason

    advice = RuntimeError("Weights only load failed. Re-running `torch.load` with `weights_only` set to `False` "
                          "will likely succeed, but it can result in arbitrary code execution.")
    assert "False" not in _torch_reason(advice) and "weights_only" not in _torch_reason(advice)


def test_csv_trailing_blank_lines_are_accepted_and_a_blank_line_inside_is_named(tmp_path):
    z, y = make_logits(n=10, k=3, seed=0)
    rows = ["".join(",".join(f"{v:.9g}" for v in r) + f",{c}") for r, c in zip(z, y)]
    (tmp_path / "t.csv").write_text("a,b,c,label\n" + "\n".join(rows) + "\n\n\n")
    code, out, err = cli("evaluate", tmp_path / "t.csv", "--json")
    assert code == 0, err
    assert json.loads(out)["n"] == 10
    (tmp_path / "m.csv").write_text("a,b,c,label\n" + "\n".join(rows[:4]) + "\n\n" + "\n".join(rows[4:]) + "\n")
    one_error(*cli("evaluate", tmp_path / "m.csv")[::2], "m.csv: line 6 is blank, with data after it")


@pytest.mark.parametrize("header,body,message", [
    ("a,b,c\n", "1,2,3\n", "no label column: expected a column named 'label' (or name it with --labels-key); "
                          "the header has: a, b, c"),
    ("a,b,label,labels\n", "1,2,0,0\n", "both 'label' and 'labels' columns"),
    ("a,a,label\n", "1,2,0\n", "column name 'a' appears twice"),
    ("a,b,label\n", "1,x,0\n", "line 2, column 'b': 'x' is not a number"),
    ("a,b,label\n", "1,2\n", "line 2 has 2 fields, the header has 3"),
    ("a,b,label\n", "1,2,cat\n", "line 2, column 'label': 'cat' is not a number"),
    ("a,b,label\n", "", "no data rows after the header"),
    ("", "", "empty CSV file"),
    ("a;b;label\n", "1;2;0\n", "the header is one column holding ';'; expected comma-separated values"),
    ("\ufeffa,b,label\n", "1,2,1\n1,2,0\n2,1,0\n", None),  # a byte-order mark is dropped
    ("a,b,label\n", "1,nan,0\n", "'class columns': expected finite logits or -inf (an absent option), got nan at row 0, column 1"),
])
def test_csv_rules_are_enforced_with_a_message(tmp_path, header, body, message):
    (tmp_path / "x.csv").write_text(header + body, encoding="utf-8")
    code, out, err = cli("evaluate", tmp_path / "x.csv", "--json")
    if message is None:
        assert code == 0 and json.loads(out)["n"] == 3, err
    else:
        one_error(code, err, f"{tmp_path / 'x.csv'}: {message}")


def test_a_class_count_mismatch_names_both_files_and_both_counts(d, tmp_path):
    np.savez(tmp_path / "k3.npz", logits=np.random.default_rng(0).normal(size=(5, 3)), labels=np.zeros(5, int))
    for args in (["evaluate", tmp_path / "k3.npz", "--calibrator", d / "cal.json"],
                 ["apply", d / "cal.json", tmp_path / "k3.npz", "-o", tmp_path / "o.npz"],
                 ["report", tmp_path / "k3.npz", "--calibrator", d / "cal.json", "-o", tmp_path / "r.html"]):
        line = one_error(*cli(*args)[::2])
        assert line == (f"calibrate: error: {tmp_path / 'k3.npz'}: has 3 classes, but the calibrator "
                        f"{d / 'cal.json'} was fitted on 4 classes; give predictions with 4 class columns, or fit "
                        "a calibrator on these")
    code, _, err = cli("report", d / "test.npz", "--fit-on", tmp_path / "k3.npz", "--methods", "temperature",
                       "-o", tmp_path / "r.html")
    one_error(code, err, f"{tmp_path / 'k3.npz'}: has 3 classes, but {d / 'test.npz'} has 4")


@pytest.mark.parametrize("args,message", [
    (["report", "{test}", "--fit-on", "{val}", "--methods", "temperature,bogus", "-o", "{out}"],
     "--methods: expected a comma-separated list of"),
    (["report", "{test}", "--seed", "-1", "-o", "{out}"], "argument --seed: expected an integer >= 0, got -1"),
    (["fit", "{k1}", "-o", "{out}"], "has 1 class column; a calibrator needs at least 2"),
    (["fit", "{val}", "-o", ""], "output: empty file name"),
    (["evaluate", "{val}", "--probs", "--log-probs"], "argument --log-probs: not allowed with argument --probs"),
    (["evaluate", "{val}", "--index-col", "x"], "--index-col and --class-columns apply to .csv files only"),
])
def test_usage_mistakes_are_one_line_before_any_work(d, tmp_path, args, message):
    np.savez(tmp_path / "k1.npz", logits=np.zeros((5, 1)), labels=np.zeros(5, int))
    names = {"test": d / "test.npz", "val": d / "val.npz", "out": tmp_path / "o.html", "k1": tmp_path / "k1.npz"}
    code, out, err = cli(*[a.format(**names) for a in args])
    one_error(code, err, message)
    assert listing(tmp_path) == ["k1.npz"]


def test_python_api_class_mismatch_says_both_counts():
    cal = calibrate.TemperatureScaling().fit(*make_logits(n=100, k=4))
    with pytest.raises(InputError, match=r"logits: expected 4 columns \(this calibrator was fitted on 4 classes\), "
                                         r"got shape \(2, 3\)"):
        cal.predict_proba(np.zeros((2, 3)))


def test_sample_weights_of_the_wrong_shape():
    with pytest.raises(InputError, match=r"sample_weight: expected shape \(3,\), one weight per row, got shape \(2, 3\)"):
        check_sample_weight(np.ones((2, 3)), 3)
    with pytest.raises(InputError, match="expected finite weights >= 0, got -1.0 at row 1"):
        check_sample_weight(np.array([1.0, -1.0, 2.0]), 3)
    with pytest.raises(InputError, match="at least one positive weight"):
        check_sample_weight(np.zeros(3), 3)


def test_a_truncated_jpeg_in_an_image_folder_names_the_file(tmp_path):
    pytest.importorskip("PIL")
    from PIL import Image

    from calibrate.apps.cifar10.data import _read_image_folder

    for c in range(10):
        (tmp_path / "train" / f"c{c}").mkdir(parents=True)
        Image.fromarray(np.full((32, 32, 3), 20 * c, np.uint8)).save(tmp_path / "train" / f"c{c}" / "a.jpg")
    bad = tmp_path / "train" / "c3" / "a.jpg"
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(InputError, match=rf"^{bad}: cannot decode the image \(.*\); the file is truncated or "
                                         "corrupt: copy it again or remove it$"):
        _read_image_folder(tmp_path / "train", progress=False)


@pytest.mark.parametrize("y,n_val,message", [
    (np.zeros(0, int), 10, "no labels to split"),
    (np.arange(100) % 10, 5, "n_val = 5 is smaller than the number of classes (10)"),
    (np.arange(100) % 10, 100, "class 0 has 10 images, too few to put 10 in validation"),
])
def test_a_dataset_too_small_to_split(y, n_val, message):
    from calibrate.apps.cifar10.data import split_train_val

    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        split_train_val(y, n_val)


def test_a_tampered_file_error_is_one_line_in_a_real_process(d, tmp_path):
    """The in-process runner above is faithful: the same case in a subprocess."""
    path = _tampered(d, tmp_path, "isotonic", lambda doc: doc["state"]["maps_"][0]["x"]["__ndarray__"].reverse())
    r = subprocess.run([sys.executable, "-m", "calibrate.cli", "evaluate", str(d / "test.npz"), "--calibrator",
                        str(path)], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "CALIBRATE_DEBUG": "", "PYTHONPATH": ROOT})
    one_error(r.returncode, r.stderr, "field 'state.maps_[0].x': expected strictly increasing values")


def test_quickstart_script_names_its_json(tmp_path):
    text = open(os.path.join(ROOT, "scripts", "quickstart.sh")).read()
    assert "--json out/report.json" in text




@pytest.mark.parametrize("exc,message", [
    (MemoryError(), "out of memory running 'evaluate'; use smaller inputs (fewer rows, bins or resamples)"),
    (RecursionError(), "input nested too deeply to process"),
])
def test_last_resort_errors_are_one_line(d, monkeypatch, exc, message):
    import calibrate.cli as c

    def boom(args):
        raise exc

    monkeypatch.setattr(c, "cmd_evaluate", boom)
    assert one_error(*cli("evaluate", d / "test.npz")[::2]) == f"calibrate: error: {message}"


# --------------------------------------------------------------------------- property: any edit
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _leaves(x, path=()):
    """Paths of every number in a decoded JSON document."""
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _leaves(v, path + (i,))
    elif isinstance(x, (int, float)) and not isinstance(x, bool):
        yield path


_DOCS = {}


def _doc(method):
    if method not in _DOCS:
        z, y = make_logits(n=300, k=3, seed=9)
        _DOCS[method] = (json.loads(calibrate.get_calibrator(method).fit(z, y).to_json()), z)
    return _DOCS[method]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(calibrate.calibrators.available_methods())), st.integers(0, 10**9),
       st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**30, 10**30),
                 st.sampled_from([0, -1, 1, 0.5, 1e308, -1e308, 5e-324, 2, 3, True, None, "1", [], {}])))
def test_any_edit_of_a_number_is_refused_or_gives_valid_probabilities(method, pick, value):
    """An attacker edits one number of a saved file: load refuses it with an InputError, or
    the calibrator it gives predicts finite probabilities whose rows sum to 1 (never NaN,
    never a crash)."""
    import copy

    doc, z = _doc(method)
    doc = copy.deepcopy(doc)
    paths = list(_leaves(doc))
    path = paths[pick % len(paths)]
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    try:
        cal = calibrate.Calibrator.from_dict(doc, "edited.json")
    except InputError:
        return
    try:
        p = cal.predict_proba(z)
    except InputError as e:
        assert "overflow" in str(e)
        return
    assert np.isfinite(p).all() and np.allclose(p.sum(1), 1.0)
