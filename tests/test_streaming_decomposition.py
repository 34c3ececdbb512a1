"""The streaming accumulator's Brier decomposition and over/under-confidence split equal
the one-shot functions of calibrate.metrics.decomposition after batches and merges."""

import numpy as np
import pytest
from conftest import make_logits

from calibrate import InputError, metrics
from calibrate._core.binning import equal_mass_edges
from calibrate.backends.streaming import CalibrationAccumulator
from calibrate.metrics import decomposition


def data(k, n=2000, seed=3):
    z, y = make_logits(n=n, k=k, temperature=2.0, seed=seed)
    p = metrics.softmax(z)
    p[:25] = np.eye(k)[y[:25]]  # confidences exactly 1.0
    return p, y


def streamed(p, y, edges=None, **kw):
    """Rows 0:n/2 in 3 uneven batches into one accumulator, the rest into another, merged."""
    n, k = p.shape
    h = n // 2
    cuts = [0, 7, h // 3, h, n]
    a = CalibrationAccumulator(k, 15, edges=edges, decomposition=True, **kw)
    for lo, hi in zip(cuts[:3], cuts[1:4]):
        a.update(p[lo:hi], y[lo:hi])
    b = CalibrationAccumulator(k, 15, edges=edges, decomposition=True, **kw).update(p[h:], y[h:])
    return a.merge(b)


def assert_close(got, ref):
    assert set(got) == set(ref)
    for key, v in ref.items():
        assert got[key] == pytest.approx(v, rel=1e-12, abs=1e-12), key


@pytest.mark.parametrize("k", [2, 10, 1000])
def test_brier_decomposition_after_batches_and_merge_equals_one_shot(k):
    p, y = data(k, n=2000 if k < 1000 else 400)
    assert_close(streamed(p, y).brier_decomposition(), decomposition.brier_decomposition(p, y, 15))


@pytest.mark.parametrize("k", [2, 10, 1000])
def test_over_under_after_batches_and_merge_equals_one_shot(k):
    p, y = data(k, n=2000 if k < 1000 else 400)
    assert_close(streamed(p, y).ece_over_under(), decomposition.ece_over_under(p, y, 15))


def test_over_under_with_fixed_equal_mass_edges_equals_one_shot():
    p, y = data(10)
    acc = streamed(p, y, edges=equal_mass_edges(p.max(1), 15))
    assert_close(acc.ece_over_under(), decomposition.ece_over_under(p, y, 15, binning="mass"))


def test_the_other_metrics_are_unchanged_by_the_decomposition_sums():
    p, y = data(10)
    with_dec = streamed(p, y).compute()
    without = CalibrationAccumulator(10, 15).update(p, y).compute()
    assert with_dec.keys() == without.keys()
    for key, v in without.items():
        assert with_dec[key] == pytest.approx(v, rel=1e-12, abs=1e-14), key
    assert with_dec["classwise_ece"] == pytest.approx(metrics.classwise_ece(p, y), rel=1e-12)


def test_state_dict_round_trip_keeps_the_decomposition():
    p, y = data(10)
    acc = streamed(p, y)
    again = CalibrationAccumulator(10, 15, decomposition=True).load_state_dict(acc.state_dict())
    assert again.brier_decomposition() == acc.brier_decomposition()


def test_decomposition_needs_its_sums_and_data():
    p, y = data(10, n=50)
    with pytest.raises(InputError, match="decomposition=True"):
        CalibrationAccumulator(10).update(p, y).brier_decomposition()
    with pytest.raises(InputError, match="no data"):
        CalibrationAccumulator(10, decomposition=True).brier_decomposition()
    with pytest.raises(InputError, match="no data"):
        CalibrationAccumulator(10).ece_over_under()
    with pytest.raises(InputError, match="differ"):
        CalibrationAccumulator(10, decomposition=True).merge(CalibrationAccumulator(10))
