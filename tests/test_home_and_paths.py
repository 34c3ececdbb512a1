"""Install truth (issue 20, part 6): the command line needs no writable home directory and
writes nothing into it; the test suite and its browser keep out of it too; reports show
paths relative to the working directory, never the machine's absolute paths."""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from conftest import make_logits

import calibrate
from calibrate.report.html import command_line, display_path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(calibrate.__file__)))
HOME_VARS = ("HOME", "MPLCONFIGDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME",
             "XDG_RUNTIME_DIR", "CALIBRATE_CACHE")


@pytest.fixture
def readonly_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o555)
    yield home
    home.chmod(0o755)


def test_the_command_line_writes_nothing_into_a_readonly_home(tmp_path, readonly_home):
    work = tmp_path / "work"
    work.mkdir()
    z, y = make_logits(n=400, k=3, seed=5)
    np.savez(work / "val.npz", logits=z[:200], labels=y[:200])
    np.savez(work / "test.npz", logits=z[200:], labels=y[200:])
    np.savez(work / "ood.npz", logits=z[:50] / 4)
    (tmp_path / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in HOME_VARS and not k.startswith("XDG_")}
    env.update(HOME=str(readonly_home), TMPDIR=str(tmp_path / "tmp"), CALIBRATE_DEBUG="",
               PYTHONPATH=os.pathsep.join([ROOT, env.get("PYTHONPATH", "")]).rstrip(os.pathsep))

    def run(*args):
        r = subprocess.run([sys.executable, "-m", "calibrate.cli", *map(str, args)], capture_output=True,
                           text=True, cwd=work, env=env)
        assert r.returncode == 0, r.stderr
        warned = [line for line in r.stderr.splitlines() if "warning" in line.lower()]
        assert not warned, r.stderr  # matplotlib's "not writable" warning above all
        return r

    # absolute paths under the working directory: the report shows them relative to it
    run("fit", work / "val.npz", "-o", work / "cal.json")
    run("report", work / "test.npz", "--calibrator", work / "cal.json", "--ood", work / "ood.npz",
        "--resamples", "10", "-o", work / "r.html", "--json", work / "r.json", "--pdf", work / "r.pdf")
    assert os.listdir(readonly_home) == []
    data = json.loads((work / "r.json").read_text())
    assert data["data"] == "test.npz" and data["fit_on"] == "cal.json" and data["ood"]["data"] == "ood.npz"
    assert "-o r.html --json r.json --pdf r.pdf" in data["command"], data["command"]
    for name in ("r.html", "r.json"):
        assert str(tmp_path) not in (work / name).read_text(), name


def test_display_path_and_the_command_line_never_show_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    outside = tempfile.gettempdir()
    assert display_path(str(tmp_path / "d" / "x.npz")) == os.path.join("d", "x.npz")
    assert display_path("d/x.npz") == "d/x.npz"  # as given
    assert display_path(outside) == os.path.relpath(os.path.realpath(outside), os.path.realpath(tmp_path))
    monkeypatch.setattr(sys, "argv", ["calibrate", "experiment", "--work", str(tmp_path / "runs"),
                                      f"--out={tmp_path / 'd' / 'out'}", "--title", "/not/a/path/at/all"])
    assert command_line() == "calibrate experiment --work runs --out=d/out --title /not/a/path/at/all"


def test_the_suite_keeps_caches_and_settings_out_of_the_home_directory():
    """tests/conftest.py points HOME, the XDG folders and MPLCONFIGDIR into a temporary folder."""
    tmp = os.path.realpath(tempfile.gettempdir())
    for name in ("HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "MPLCONFIGDIR", "CALIBRATE_CACHE"):
        assert os.path.realpath(os.environ[name]).startswith(tmp + os.sep), name
    import matplotlib

    assert os.path.realpath(matplotlib.get_cachedir()).startswith(tmp + os.sep)


@pytest.mark.browser
def test_the_browser_checks_write_nothing_into_the_home_directory(tmp_path, monkeypatch, readonly_home):
    from browser_checks import chromium

    for name in HOME_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(readonly_home))
    page = tmp_path / "p.html"
    page.write_text("<!DOCTYPE html><title>t</title><p>hello</p>")
    drv = chromium()
    try:
        drv.get(page.as_uri())
        assert "hello" in drv.page_source
    finally:
        drv.quit()
    assert os.listdir(readonly_home) == []
