"""OOD sets: digits upsampled (block / Pillow references), noise images (their distributions),
the held-out-class split (a loop, invariants)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from scipy import stats
from sklearn.datasets import load_digits

from calibrate._core.validation import InputError
from calibrate.apps.cifar10 import ood


@pytest.fixture(scope="module")
def digits():
    return load_digits()


# ------------------------------------------------------------------ digits
def test_digits_nearest_is_block_replication(digits):
    x, y = ood.digits_images()
    assert x.shape == (1797, 32, 32, 3) and x.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(y, digits.target)
    for i in (0, 1, 500, 1796):
        grey = np.rint(digits.images[i] * 255 / 16)
        np.testing.assert_array_equal(x[i, ..., 0], np.kron(grey, np.ones((4, 4))))
    np.testing.assert_array_equal(x[..., 0], x[..., 1])
    np.testing.assert_array_equal(x[..., 0], x[..., 2])
    levels = {int(round(v * 255 / 16)) for v in range(17)}
    assert set(np.unique(x).tolist()) <= levels and x.max() == 255 and x.min() == 0


def test_digits_bilinear_equals_pillow(digits):
    x, _ = ood.digits_images(resample="bilinear")
    for i in (3, 900):
        grey = Image.fromarray(np.rint(digits.images[i] * 255 / 16).astype(np.uint8))
        want = np.asarray(grey.resize((32, 32), Image.BILINEAR))
        np.testing.assert_array_equal(x[i, ..., 1], want)
    near, _ = ood.digits_images()
    assert abs(x.mean() - near.mean()) < 2  # resampling keeps the mean grey level roughly


def test_digits_sample_is_seeded_subset(digits):
    xa, ya = ood.digits_images(50, seed=4)
    xb, yb = ood.digits_images(50, seed=4)
    np.testing.assert_array_equal(xa, xb)
    assert not np.array_equal(xa, ood.digits_images(50, seed=5)[0])
    full, fy = ood.digits_images()
    idx = [int(np.flatnonzero((full == im).all(axis=(1, 2, 3)))[0]) for im in xa]
    np.testing.assert_array_equal(fy[idx], ya)
    assert len(set(idx)) == 50 and idx == sorted(idx)
    assert ood.digits_images(ood.N_DIGITS)[0].shape[0] == ood.N_DIGITS


@pytest.mark.parametrize("kw, msg", [
    ({"n": 0}, "n: expected a positive integer"),
    ({"n": 1798}, "expected at most 1797"),
    ({"n": 2.0}, "n: expected a positive integer"),
    ({"resample": "bicubic"}, "resample: expected 'nearest' or 'bilinear'"),
    ({"n": 3, "seed": -2}, "seed: expected a non-negative integer"),
])
def test_digits_refusals(kw, msg):
    with pytest.raises(InputError, match=msg):
        ood.digits_images(**kw)


# ------------------------------------------------------------------ noise images
def test_uniform_noise_is_uniform_and_seeded():
    x = ood.uniform_noise_images(40, seed=1)  # 122,880 values
    assert x.shape == (40, 32, 32, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(x, ood.uniform_noise_images(40, seed=1))
    assert not np.array_equal(x, ood.uniform_noise_images(40, seed=2))
    np.testing.assert_array_equal(ood.uniform_noise_images(10, seed=1), x[:10])
    counts = np.bincount(x.ravel(), minlength=256)
    assert stats.chisquare(counts).pvalue > 1e-4
    assert abs(x.mean() - 127.5) < 4 * np.sqrt((256**2 - 1) / 12 / x.size)


def test_gaussian_noise_matches_clipped_normal():
    x = ood.gaussian_noise_images(40, seed=3).astype(np.float64)
    m = x.size
    for level, p in ((0, stats.norm.cdf((0.5 / 255 - 0.5) / 0.5)), (255, stats.norm.sf((254.5 / 255 - 0.5) / 0.5))):
        frac = (x == level).mean()  # mass clipped to the end, plus what rounds onto it
        assert abs(frac - p) < 4 * np.sqrt(p * (1 - p) / m), (level, frac, p)
    assert abs(x.mean() - 127.5) < 4 * x.std() / np.sqrt(m)  # symmetric about 0.5
    # inside (0, 1) the values are the normal's: the share in [64, 191] is P(z in [63.5, 191.5] / 255)
    p = stats.norm.cdf((191.5 / 255 - 0.5) / 0.5) - stats.norm.cdf((63.5 / 255 - 0.5) / 0.5)
    assert abs(((x >= 64) & (x <= 191)).mean() - p) < 4 * np.sqrt(p * (1 - p) / m)
    narrow = ood.gaussian_noise_images(20, seed=3, mean=0.2, std=0.05).astype(np.float64) / 255
    assert abs(narrow.mean() - 0.2) < 1e-3 and abs(narrow.std() - 0.05) < 1e-3


def test_noise_sets_use_separate_streams():
    a = ood.uniform_noise_images(5, seed=0).astype(np.float64)
    b = ood.gaussian_noise_images(5, seed=0).astype(np.float64)
    assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.05


@pytest.mark.parametrize("call, msg", [
    (lambda: ood.uniform_noise_images(0), "n: expected a positive integer"),
    (lambda: ood.gaussian_noise_images(3, std=0), "std > 0"),
    (lambda: ood.gaussian_noise_images(3, mean=float("nan")), "std > 0"),
    (lambda: ood.uniform_noise_images(True), "n: expected a positive integer"),
    (lambda: ood.far_ood_images("svhn", 3), "far OOD set: expected one of digits, uniform_noise, gaussian_noise"),
    (lambda: ood.far_ood_images("held_out_classes", 3), "far OOD set"),
])
def test_noise_refusals(call, msg):
    with pytest.raises(InputError, match=msg):
        call()


@pytest.mark.parametrize("name", ood.FAR_OOD)
def test_far_ood_dispatch(name):
    x = ood.far_ood_images(name, 7, seed=2)
    assert x.shape == (7, 32, 32, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(x, ood.far_ood_images(name, 7, seed=2))


def test_near_and_far_are_declared():
    assert ood.OOD_SETS["held_out_classes"] == "near"
    assert set(ood.FAR_OOD) == {"digits", "uniform_noise", "gaussian_noise"}


# ------------------------------------------------------------------ held-out classes
def test_held_out_split_default_against_a_loop():
    y = np.random.default_rng(0).integers(0, 10, 500)
    s = ood.held_out_class_split(y)
    assert s.held_out == (5, 9) and s.kept == (0, 1, 2, 3, 4, 6, 7, 8) and s.n_classes_in == 8
    new = 0
    for c in range(10):
        if c in (5, 9):
            assert s.remap[c] == -1
        else:
            assert s.remap[c] == new
            new += 1
    for i, c in enumerate(y):
        assert s.out_mask[i] == (c in (5, 9)) and s.in_mask[i] == (c not in (5, 9))
    np.testing.assert_array_equal(s.in_labels, [s.remap[c] for c in y if c not in (5, 9)])
    assert s.in_labels.dtype == np.int64 and set(s.in_labels.tolist()) == set(range(8))


@settings(max_examples=50, deadline=None)
@given(y=st.lists(st.integers(0, 9), min_size=1, max_size=60),
       held=st.sets(st.integers(0, 9), min_size=1, max_size=8))
def test_held_out_split_invariants(y, held):
    y = np.array(y)
    s = ood.held_out_class_split(y, held_out=sorted(held, reverse=True))
    assert s.held_out == tuple(sorted(held))
    assert not (s.in_mask & s.out_mask).any() and (s.in_mask | s.out_mask).all()
    np.testing.assert_array_equal(np.array(s.kept)[s.in_labels], y[s.in_mask])  # remap is invertible
    assert sorted(s.remap[s.remap >= 0].tolist()) == list(range(10 - len(held)))
    assert np.all(np.diff(s.remap[list(s.kept)]) == 1)  # class order kept


def test_held_out_split_other_class_counts():
    s = ood.held_out_class_split(np.array([0, 1, 2, 2]), held_out=2, n_classes=3)
    np.testing.assert_array_equal(s.out_mask, [False, False, True, True])
    np.testing.assert_array_equal(s.in_labels, [0, 1])


@pytest.mark.parametrize("held, msg", [
    ((5, 5), "distinct class indices"), ((10,), "in \\[0, 10\\)"), ((), "1 to 8"), ((1.5,), "got \\(1.5,\\)"),
    (("a",), "held_out"), ((True,), "held_out"), (tuple(range(9)), "1 to 8"), (None, "held_out"),
])
def test_held_out_refusals(held, msg):
    with pytest.raises(InputError, match=msg):
        ood.held_out_class_split(np.arange(10), held_out=held)


def test_held_out_validates_labels():
    with pytest.raises(InputError, match=r"labels: expected class indices in \[0, 10\)"):
        ood.held_out_class_split(np.array([0, 10]))
    with pytest.raises(InputError, match="n_classes: expected an integer >= 3"):
        ood.held_out_class_split(np.array([0, 1]), held_out=(1,), n_classes=2)
