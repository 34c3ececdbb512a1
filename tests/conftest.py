import numpy as np
import pytest


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


@pytest.fixture(autouse=True, scope="session")
def _caches_in_tmp(tmp_path_factory):
    """Whatever caches during the tests (calibrate's decoded images, matplotlib's font list)
    caches in a temporary folder, never in the home directory (subprocesses inherit this)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CALIBRATE_CACHE", str(tmp_path_factory.mktemp("calibrate-cache")))
    mp.setenv("MPLCONFIGDIR", str(tmp_path_factory.mktemp("mplconfig")))
    yield
    mp.undo()
