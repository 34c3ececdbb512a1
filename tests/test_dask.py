"""Dask arrays give the in-memory numbers: metrics to 1e-12, the temperature to 1e-8 relative,
on a two-worker distributed.LocalCluster."""

import numpy as np
import pytest
from conftest import make_logits

import calibrate
from calibrate import metrics
from calibrate.backends.streaming import CalibrationAccumulator

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def data():
    z, y = make_logits(n=12_000, k=7, temperature=2.0, seed=2)
    z = z.astype(np.float32)
    p = metrics.softmax(z)
    # uneven row chunks, labels chunked differently from the rows (they are realigned)
    return z, y, p, da.from_array(z, chunks=(2_900, 7)), da.from_array(y, chunks=5_000), da.from_array(p, chunks=(4_100, 7))


@pytest.mark.parametrize("name", ["accuracy", "nll", "brier"])
def test_simple_metrics_equal_in_memory(client, data, name):
    z, y, p, zd, yd, pd = data
    assert getattr(metrics, name)(pd, yd) == pytest.approx(getattr(metrics, name)(p, y), rel=1e-12, abs=1e-15)


def test_nll_from_logits(client, data):
    z, y, p, zd, yd, pd = data
    assert metrics.nll_from_logits(zd, yd) == pytest.approx(metrics.nll_from_logits(z, y), rel=1e-12)


@pytest.mark.parametrize("kw", [{}, {"norm": "l2"}, {"norm": "max"}, {"binning": "mass"}, {"classwise": True},
                                {"norm": "l2", "debiased": True}, {"n_bins": 7, "classwise": True, "norm": "l2"}])
def test_ece_variants_equal_in_memory(client, data, kw):
    z, y, p, zd, yd, pd = data
    assert metrics.ece(pd, yd, **kw) == pytest.approx(metrics.ece(p, y, **kw), rel=1e-12, abs=1e-15)


def test_lazy_softmax_of_a_dask_array(client, data):
    z, y, p, zd, yd, pd = data
    sd = calibrate.softmax(zd)
    assert hasattr(sd, "dask")
    assert metrics.ece(sd, yd) == pytest.approx(metrics.ece(p, y), rel=1e-12)


def test_streaming_accumulator_of_a_dask_array(client, data):
    z, y, p, zd, yd, pd = data
    a = CalibrationAccumulator(7).update(logits=zd, labels=yd).compute()
    b = CalibrationAccumulator(7).update(logits=z, labels=y).compute()
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-12, abs=1e-15), key


def test_temperature_fit_equals_in_memory(client, data):
    z, y, p, zd, yd, pd = data
    a = calibrate.TemperatureScaling().fit(z, y)
    b = calibrate.TemperatureScaling().fit(zd, yd)
    assert b.temperature_ == pytest.approx(a.temperature_, rel=1e-8)
    assert b.nll_before_ == pytest.approx(a.nll_before_, rel=1e-12)
    assert b.nll_after_ == pytest.approx(a.nll_after_, rel=1e-12)
    out = b.predict_proba(zd)
    assert hasattr(out, "dask")
    np.testing.assert_allclose(out.compute(), a.predict_proba(z), rtol=1e-12, atol=1e-15)


def test_bad_dask_labels_are_input_errors(client, data):
    z, y, p, zd, yd, pd = data
    with pytest.raises(calibrate.InputError, match="labels"):
        calibrate.TemperatureScaling().fit(zd, da.from_array(y[:-1]))
    with pytest.raises(calibrate.InputError, match="class indices"):
        calibrate.TemperatureScaling().fit(zd, da.from_array(y + 7))


@pytest.mark.parametrize("seed", [0, 5])
def test_debiased_l1_ece_of_a_dask_array_follows_the_seed(client, data, seed):
    z, y, p, zd, yd, pd = data
    got = metrics.ece(pd, yd, debiased=True, seed=seed)
    assert got == pytest.approx(metrics.ece(p, y, debiased=True, seed=seed), rel=1e-12)


def test_debiased_l1_ece_of_a_dask_array_differs_between_seeds(client, data):
    z, y, p, zd, yd, pd = data
    assert metrics.ece(pd, yd, debiased=True, seed=0) != metrics.ece(pd, yd, debiased=True, seed=5)


@pytest.mark.parametrize("binning", ["width", "mass"])
def test_ece_over_under_equals_in_memory(client, data, binning):
    from calibrate.metrics import decomposition

    z, y, p, zd, yd, pd = data
    got, ref = decomposition.ece_over_under(pd, yd, binning=binning), decomposition.ece_over_under(p, y, binning=binning)
    for key in ref:
        assert got[key] == pytest.approx(ref[key], rel=1e-12, abs=1e-15), key


def test_brier_decomposition_and_its_accumulator_equal_in_memory(client, data):
    from calibrate.metrics import decomposition

    z, y, p, zd, yd, pd = data
    ref = decomposition.brier_decomposition(p, y)
    got = decomposition.brier_decomposition(pd, yd)
    acc = CalibrationAccumulator(7, decomposition=True).update(pd, yd).brier_decomposition()
    for key in ref:
        assert got[key] == pytest.approx(ref[key], rel=1e-12, abs=1e-15), key
        assert acc[key] == pytest.approx(ref[key], rel=1e-12, abs=1e-15), key
    with pytest.raises(calibrate.InputError, match="width"):
        decomposition.brier_decomposition(pd, yd, binning="mass")
