import os

import numpy as np
import pytest


def run_cli(*args, stdout=None):
    """The command line in-process: (exit code, stdout, stderr). stdout: a file to write to
    instead of capturing (its text is then not returned)."""
    import contextlib
    import io
    import warnings

    from calibrate.cli import main

    out, err = stdout or io.StringIO(), io.StringIO()
    saved = warnings.showwarning
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("always")
            try:
                code = main([str(a) for a in args])
            except SystemExit as e:
                code = e.code
    finally:
        warnings.showwarning = saved
    return code, out.getvalue() if stdout is None else "", err.getvalue()


def make_logits(n=4000, k=10, temperature=2.0, seed=0, dtype=np.float64):
    """Logits of a model that is calibrated at `temperature`: labels are drawn from
    softmax(z / temperature), so the NLL-optimal temperature is close to it."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n, k)) * 2.0
    u[np.arange(n), rng.integers(0, k, n)] += 2.5
    p = np.exp(u - u.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    y = (p.cumsum(1) > rng.random((n, 1))).argmax(1)
    return (u * temperature).astype(dtype), y


@pytest.fixture
def logits_labels():
    return make_logits()


@pytest.fixture
def probs_labels():
    z, y = make_logits(n=3000, k=5, temperature=1.7, seed=1)
    p = np.exp(z - z.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True), y


# Whatever caches or keeps settings during the tests (calibrate's decoded images,
# matplotlib's font list, Chromium's profile, dconf) does it in a temporary folder, never in
# the home directory: HOME and the XDG folders point into it, set before anything is
# collected (a test module that imports matplotlib reads MPLCONFIGDIR then); subprocesses
# inherit them. Each pytest process (xdist workers too) gets its own, removed at the end.
_HOME_LIKE = ("HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME",
              "MPLCONFIGDIR", "CALIBRATE_CACHE")
_saved_env: dict = {}


def pytest_configure(config):
    import tempfile

    root = tempfile.mkdtemp(prefix="calibrate-tests-home-")
    _saved_env.update({name: os.environ.get(name) for name in _HOME_LIKE})
    _saved_env["_root"] = root
    for name in _HOME_LIKE:
        path = os.path.join(root, name.lower())
        os.makedirs(path)
        os.environ[name] = path


def pytest_unconfigure(config):
    import shutil

    root = _saved_env.pop("_root", None)
    for name, value in _saved_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _saved_env.clear()
    if root:
        shutil.rmtree(root, ignore_errors=True)
