"""Loose ends of a hostile trial on saved logits (issue 20, part 8): binary probabilities
passed as logits, identifier columns in a CSV, a disk that fills up mid-write."""

import errno
import io
import os
import warnings

import numpy as np
import pytest
from conftest import make_logits, run_cli

import calibrate
from calibrate._core.validation import CalibrationWarning

cli = run_cli


def one_error(code, err, *fragments):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("calibrate: error: "), err
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


def binary(n=400, seed=0):
    rng = np.random.default_rng(seed)
    s = rng.normal(size=n) * 1.5
    y = (rng.random(n) < 1 / (1 + np.exp(-s))).astype(int)
    return s, 1 / (1 + np.exp(-s)), y


# ---------------------------------------------------------------- (i) binary probabilities as logits
@pytest.mark.parametrize("cls", [calibrate.BetaCalibration, calibrate.PlattScaling, calibrate.TemperatureScaling])
def test_binary_probabilities_passed_as_logits_warn(cls):
    s, p, y = binary()
    with pytest.warns(CalibrationWarning, match="look like probabilities of class 1.*kind='probs'"):
        cls().fit(p, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = cls().fit(p, y, kind="probs")  # said: no warning, fitted on log [1 - p, p]
        cls().fit(s, y)  # binary logits
        cls().fit(p, y, kind="logits")  # said: kept as logits
    assert np.isfinite(a.predict_proba(p, kind="probs")).all()


def test_binary_probabilities_warn_on_the_command_line_too(tmp_path):
    s, p, y = binary()
    np.savez(tmp_path / "p.npz", logits=p, labels=y)
    code, _, err = cli("fit", tmp_path / "p.npz", "--method", "beta", "-o", tmp_path / "c.json")
    assert code == 0 and "calibrate: warning: " in err and "probabilities of class 1" in err, err
    np.savez(tmp_path / "s.npz", logits=s, labels=y)
    code, _, err = cli("fit", tmp_path / "s.npz", "--method", "beta", "-o", tmp_path / "c.json")
    assert code == 0 and "warning" not in err, err


# ---------------------------------------------------------------- (ii) identifiers in a CSV
def write_csv(path, header, first, z, y):
    with open(path, "w") as fh:
        fh.write(",".join(header) + "\n")
        for i in range(len(y)):
            fh.write(",".join([str(first[i]), *(repr(float(v)) for v in z[i]), str(y[i])]) + "\n")


@pytest.mark.parametrize("name, first, fragment", [
    ("sample_id", 1000 + np.arange(60), "named like an identifier"),  # ids that do not start at 0 or 1
    ("key", np.random.default_rng(0).permutation(60), "a different whole number on every row"),  # shuffled
])
def test_a_csv_identifier_column_is_refused_with_the_option_to_skip_it(tmp_path, name, first, fragment):
    z, y = make_logits(n=60, k=3, seed=2)
    write_csv(tmp_path / "p.csv", [name, "a", "b", "c", "label"], first, z, y)
    code, _, err = cli("fit", tmp_path / "p.csv", "-o", tmp_path / "c.json")
    one_error(code, err, "p.csv", f"column '{name}'", fragment, f"--index-col '{name}'")
    assert not (tmp_path / "c.json").exists()
    code, _, err = cli("fit", tmp_path / "p.csv", "--index-col", name, "-o", tmp_path / "c.json")
    assert code == 0, err


def test_a_csv_text_identifier_is_skipped_with_index_col(tmp_path):
    z, y = make_logits(n=30, k=3, seed=3)
    write_csv(tmp_path / "p.csv", ["image", "a", "b", "c", "label"], [f"img_{i:04d}.png" for i in range(30)], z, y)
    code, _, err = cli("fit", tmp_path / "p.csv", "-o", tmp_path / "c.json")
    one_error(code, err, "p.csv", "line 2, column 'image'", "--index-col 'image'")
    code, _, err = cli("fit", tmp_path / "p.csv", "--index-col", "image", "-o", tmp_path / "c.json")
    assert code == 0, err  # the index column is skipped, never read as a number
    ref = calibrate.TemperatureScaling().fit(z, y).temperature_
    assert calibrate.load(tmp_path / "c.json").temperature_ == pytest.approx(ref, rel=1e-9)


def test_whole_number_scores_on_few_rows_are_not_taken_for_identifiers(tmp_path):
    y = np.array([0, 1, 2, 0, 0, 2])
    z = np.array([[3, 0, 1], [1, 4, 0], [0, 2, 5], [2, 6, 1], [7, 1, 2], [1, 0, 8]], dtype=float)
    with open(tmp_path / "p.csv", "w") as fh:
        fh.write("a,b,c,label\n" + "".join(f"{int(r[0])},{int(r[1])},{int(r[2])},{t}\n" for r, t in zip(z, y)))
    code, _, err = cli("fit", tmp_path / "p.csv", "-o", tmp_path / "c.json")
    assert code == 0, err


# ---------------------------------------------------------------- (iii) a full disk
@pytest.fixture
def files(tmp_path):
    z, y = make_logits(n=300, k=4, seed=0)
    np.savez(tmp_path / "p.npz", logits=z, labels=y)
    assert cli("fit", tmp_path / "p.npz", "-o", tmp_path / "c.json")[0] == 0
    return tmp_path


def _snapshot(d):
    return {p: (d / p).read_bytes() for p in sorted(os.listdir(d))}


def _full(after=0):
    """os.fsync that fails with ENOSPC from its (after + 1)-th call on (a file's data
    reaches the disk only at fsync: where a full disk shows on many file systems)."""
    calls = [0]

    def fsync(fd):
        calls[0] += 1
        if calls[0] > after:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return fsync


@pytest.mark.parametrize("command", [
    ["fit", "{d}/p.npz", "-o", "{d}/c.json"],  # over an existing output: it is kept as it was
    ["fit", "{d}/p.npz", "-o", "{d}/new.json"],
    ["apply", "{d}/c.json", "{d}/p.npz", "-o", "{d}/o.npz"],
    ["report", "{d}/p.npz", "--calibrator", "{d}/c.json", "--resamples", "5", "-o", "{d}/r.html",
     "--json", "{d}/r.json", "--pdf", "{d}/r.pdf"],
])
def test_a_full_disk_gives_one_line_and_leaves_nothing(files, monkeypatch, command):
    before = _snapshot(files)
    monkeypatch.setattr(os, "fsync", _full())
    code, _, err = cli(*[a.format(d=files) for a in command])
    err = "\n".join(line for line in err.splitlines() if not line.startswith(("bootstrapping", "laying out")))
    one_error(code, err, "No space left on device", "free some space")
    assert _snapshot(files) == before  # no temporary left, no input or old output touched


def test_a_full_disk_while_writing_the_journal_leaves_no_journal(files, monkeypatch):
    """Three outputs: three temporaries, then the journal: its fsync fails. A partial journal
    left behind made the next write of the same outputs fail ("unreadable output journal")."""
    before = _snapshot(files)
    monkeypatch.setattr(os, "fsync", _full(after=3))
    args = ["report", files / "p.npz", "--calibrator", files / "c.json", "--resamples", "5",
            "-o", files / "r.html", "--json", files / "r.json", "--pdf", files / "r.pdf"]
    code, _, err = cli(*args)
    assert code == 2 and "No space left on device" in err, err
    assert _snapshot(files) == before
    monkeypatch.undo()
    code, _, err = cli(*args)
    assert code == 0, err


class _FullStream(io.StringIO):
    def write(self, s):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_under_redirected_stdout_is_named(files):
    code, _, err = cli("evaluate", files / "p.npz", "--json", stdout=_FullStream())
    one_error(code, err, "standard output", "No space left on device", "free some space")


# ---------------------------------------------------------------- more of the trial
@pytest.mark.parametrize("command", [
    ["evaluate", "{k1}"],  # printed a "perfect" 0 for every metric
    ["report", "{k1}", "--resamples", "5", "-o", "{d}/r.html"],  # wrote a report of zeros
    ["apply", "{d}/c.json", "{k1}", "-o", "{d}/o.npz"],
])
def test_one_class_column_is_refused_by_every_command(files, command):
    np.savez(files / "k1.npz", logits=np.zeros((50, 1)), labels=np.zeros(50, int))
    before = _snapshot(files)
    code, _, err = cli(*[a.format(d=files, k1=files / "k1.npz") for a in command])
    one_error(code, err, "k1.npz: has 1 class column", "at least 2")
    assert _snapshot(files) == before


def test_apply_refuses_an_output_that_is_not_npz(files):
    """apply wrote a .npz archive under the name probs.csv."""
    code, _, err = cli("apply", files / "c.json", files / "p.npz", "-o", files / "probs.csv")
    one_error(code, err, "probs.csv", "ending in .npz")
    assert not (files / "probs.csv").exists()


def test_swapped_apply_arguments_are_named(files):
    """apply DATA CAL.json said only "cannot be read ('utf-8' codec can't decode byte 0x86 ...)"."""
    code, _, err = cli("apply", files / "p.npz", files / "c.json", "-o", files / "o.npz")
    one_error(code, err, "the calibrator comes first: calibrate apply CAL.json DATA")
    code, _, err = cli("evaluate", files / "p.npz", "--calibrator", files / "p.npz")
    one_error(code, err, "p.npz: not a JSON file: it holds binary data")
    assert not (files / "o.npz").exists()
