"""CIFAR-10-C style corruptions: contracts, seeding, severity order, closed forms, references.

References: closed forms written out here, Pillow (JPEG, pixelate), and where installed the
libraries the paper's script used (scikit-image, OpenCV), run on the same inputs and draws.
"""

import io
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from calibrate._core.validation import InputError
from calibrate.apps.cifar10 import corruptions as C

# ../shared/data/cifar10 next to the checkout (tests/test_experiment.py), or two levels up from a worktree
CANDIDATES = [Path(__file__).resolve().parents[i] / "shared" / "data" / "cifar10" / "test" for i in (2, 3)]
RANDOM_NAMES = sorted(C.RANDOM)
FIXED_NAMES = sorted(set(C.CORRUPTIONS) - C.RANDOM)


def _test_folder():
    for cand in CANDIDATES:
        if cand.is_dir():
            return cand
    return None


@pytest.fixture(scope="module")
def real():
    """100 CIFAR-10 test images (10 per class) from the shared JPEG copy."""
    root = _test_folder()
    if root is None:
        pytest.skip("the CIFAR-10 JPEG copy is not here")
    files = [f for d in sorted(p for p in root.iterdir() if p.is_dir()) for f in sorted(d.iterdir())[:10]]
    return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])


@pytest.fixture(scope="module")
def synth():
    """12 synthetic images: smooth colour gradients plus noise and a few hard edges."""
    rng = np.random.default_rng(5)
    r, c = np.mgrid[0:32, 0:32] / 31.0
    base = np.stack([r, c, 1 - (r + c) / 2], -1)
    x = base[None] * rng.uniform(0.3, 1.0, (12, 1, 1, 3)) + rng.normal(0, 0.05, (12, 32, 32, 3))
    x[:, 8:16, 8:24] = rng.uniform(0, 1, (12, 1, 1, 3))
    return np.rint(np.clip(x, 0, 1) * 255).astype(np.uint8)


def _grey(n, v=128):
    return np.full((n, 32, 32, 3), v, np.uint8)


# ------------------------------------------------------------------ contracts
def test_registry_and_parameters():
    required = {"gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "gaussian_blur", "contrast",
                "brightness", "jpeg_compression", "pixelate", "elastic_transform", "zoom_blur", "fog"}
    assert required <= set(C.CORRUPTIONS)
    assert set(C.PARAMS) == set(C.CORRUPTIONS)
    for name, fn in C.CORRUPTIONS.items():
        assert len(C.PARAMS[name]) == 5 and fn.__name__ == name
    # spot values of hendrycks/robustness make_cifar_c.py, typed in from the script
    assert C.PARAMS["gaussian_noise"] == (0.04, 0.06, 0.08, 0.09, 0.10)
    assert C.PARAMS["jpeg_compression"] == (80, 65, 58, 50, 40)
    assert np.allclose(C.PARAMS["elastic_transform"][4], (3.2, 0.96, 0.96))


@pytest.mark.parametrize("name", sorted(C.CORRUPTIONS))
def test_shape_dtype_new_array_input_untouched(name, synth):
    before = synth.copy()
    out = C.corrupt(synth, name, 3, seed=1)
    assert out.shape == synth.shape and out.dtype == np.uint8
    assert not np.shares_memory(out, synth)
    np.testing.assert_array_equal(synth, before)
    assert C.CORRUPTIONS[name](synth, 3, seed=1).tobytes() == out.tobytes()


@pytest.mark.parametrize("name", sorted(C.CORRUPTIONS))
def test_empty_and_single_image(name, synth):
    assert C.corrupt(synth[:0], name, 2).shape == (0, 32, 32, 3)
    assert C.corrupt(synth[:1], name, 5).shape == (1, 32, 32, 3)


class _FakeTensor:
    """Duck-typed like a torch tensor (what _validation.to_numpy looks for), without importing torch."""

    def __init__(self, a):
        self.a = a

    def detach(self):
        return self

    def cpu(self):
        return self

    def numpy(self):
        return self.a

    dtype = "torch.uint8"


def test_tensors_accepted(synth):
    np.testing.assert_array_equal(C.corrupt(_FakeTensor(synth), "contrast", 2), C.corrupt(synth, "contrast", 2))
    if "torch" in sys.modules:  # the real thing, when another test has paid for the import
        torch = sys.modules["torch"]
        np.testing.assert_array_equal(C.corrupt(torch.from_numpy(synth), "contrast", 2), C.corrupt(synth, "contrast", 2))


# ------------------------------------------------------------------ seeding
@pytest.mark.parametrize("name", RANDOM_NAMES)
def test_random_corruptions_are_seeded(name, synth):
    a, b = C.corrupt(synth, name, 4, seed=3), C.corrupt(synth, name, 4, seed=3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, C.corrupt(synth, name, 4, seed=4))
    # another severity draws from another generator, not the same noise rescaled
    assert C._rngs(name, 4, 3, 1)[0].random() != C._rngs(name, 5, 3, 1)[0].random()


@pytest.mark.parametrize("name", FIXED_NAMES)
def test_deterministic_corruptions_ignore_the_seed(name, synth):
    np.testing.assert_array_equal(C.corrupt(synth, name, 4, seed=0), C.corrupt(synth, name, 4, seed=9))


@pytest.mark.parametrize("name", sorted(C.CORRUPTIONS))
def test_prefix_and_chunking_invariance(name, synth, monkeypatch):
    full = C.corrupt(synth, name, 5, seed=2)
    np.testing.assert_array_equal(C.corrupt(synth[:5], name, 5, seed=2), full[:5])
    monkeypatch.setattr(C, "_CHUNK", 5)  # 12 images in chunks of 5, 5, 2
    np.testing.assert_array_equal(C.corrupt(synth, name, 5, seed=2), full)


@settings(max_examples=20, deadline=None)
@given(x=arrays(np.uint8, st.tuples(st.integers(1, 3), st.just(32), st.just(32), st.just(3))),
       name=st.sampled_from(sorted(C.CORRUPTIONS)), severity=st.integers(1, 5), seed=st.integers(0, 2**32))
def test_property_contract(x, name, severity, seed):
    out = C.corrupt(x, name, severity, seed)
    assert out.shape == x.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(C.corrupt(x[:1], name, severity, seed), out[:1])


# ------------------------------------------------------------------ severity order
@pytest.mark.parametrize("name", sorted(set(C.CORRUPTIONS) - {"elastic_transform"}))
def test_distance_from_clean_grows_with_severity(name, real):
    d = [np.abs(C.corrupt(real, name, s, 0).astype(np.float64) - real).mean() for s in C.SEVERITIES]
    assert all(b > a for a, b in zip(d, d[1:])), d


def test_elastic_severity_is_not_monotone_in_pixel_distance(real):
    """Documented: with the script's parameters the affine jitter (largest at severity 1)
    dominates the pixel distance; the elastic field grows with severity instead."""
    d = [np.abs(C.corrupt(real, "elastic_transform", s, 0).astype(np.float64) - real).mean() for s in C.SEVERITIES]
    assert d[0] > d[-1]
    ramp = _ramp(30)
    resid = [_plane_residual(C.corrupt(ramp, "elastic_transform", s, 0)) for s in C.SEVERITIES]
    # severity 1 is a pure affine: a linear ramp stays a plane, up to rounding (0.5) and the fit
    assert resid[0] < 0.75, resid
    assert resid[1] < resid[2] < resid[3] < resid[4], resid


# ------------------------------------------------------------------ refusals
@pytest.mark.parametrize("severity", [0, 6, -1, 2.5, True, "3", None])
def test_bad_severity_refused(severity, synth):
    with pytest.raises(InputError, match=r"severity: expected an integer from 1 to 5"):
        C.corrupt(synth, "contrast", severity)


@pytest.mark.parametrize("name", ["frost", "Gaussian Noise", "", None, 3])
def test_unknown_corruption_refused(name, synth):
    with pytest.raises(InputError, match=r"corruption: expected one of gaussian_noise, .*got"):
        C.corrupt(synth, name, 1)


@pytest.mark.parametrize("bad, what", [
    (np.zeros((2, 32, 32, 3), np.float32), "got dtype float32"),
    (np.zeros((32, 32, 3), np.uint8), r"got shape \(32, 32, 3\)"),
    (np.zeros((2, 3, 32, 32), np.uint8), r"got shape \(2, 3, 32, 32\)"),
    (np.zeros((2, 28, 28, 3), np.uint8), r"got shape \(2, 28, 28, 3\)"),
])
def test_bad_images_refused(bad, what):
    with pytest.raises(InputError, match=what):
        C.corrupt(bad, "contrast", 1)


def test_bad_seed_refused(synth):
    with pytest.raises(InputError, match="seed: expected a non-negative integer"):
        C.corrupt(synth, "gaussian_noise", 1, seed=-1)


# ------------------------------------------------------------------ closed forms
def _round(v):
    return np.clip(v, 0, 1) * 255  # in grey levels, not yet rounded


def _assert_close_uint8(got, want, tol=1e-6):
    """got == round(want) wherever want (grey levels) is not within tol of a .5 tie;
    at a tie float summation order may round either way (one level)."""
    diff = np.abs(got.astype(np.float64) - np.rint(want))
    tie = np.abs(want - np.floor(want) - 0.5) < tol
    assert diff.max() <= 1
    assert not (diff[~tie] > 0).any(), f"{int((diff[~tie] > 0).sum())} pixels differ away from a rounding tie"


@pytest.mark.parametrize("severity", C.SEVERITIES)
def test_contrast_closed_form(severity, synth):
    c = C.PARAMS["contrast"][severity - 1]
    want = []
    for im in synth / 255.0:
        m = np.array([im[:, :, ch].mean() for ch in range(3)])
        want.append(_round((im - m) * c + m))
    _assert_close_uint8(C.contrast(synth, severity), np.array(want))


@pytest.mark.parametrize("severity", C.SEVERITIES)
def test_brightness_closed_form(severity, synth):
    """V + c with H and S kept: every channel scales by min(V + c, 1) / V; black turns grey c."""
    c = C.PARAMS["brightness"][severity - 1]
    x = np.concatenate([synth, np.zeros((1, 32, 32, 3), np.uint8)]) / 255.0
    v = x.max(-1, keepdims=True)
    want = np.where(v > 0, x * np.minimum(v + c, 1) / np.where(v > 0, v, 1), c)
    _assert_close_uint8(C.brightness(np.rint(x * 255).astype(np.uint8), severity), _round(want))


def test_hsv_round_trip_and_known_colours():
    rgb = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 0, 0], [0.5, 0.5, 0.5], [0.2, 0.4, 0.8]])
    hsv = C.rgb_to_hsv(rgb)
    np.testing.assert_allclose(hsv[:5], [[0, 1, 1], [1 / 3, 1, 1], [2 / 3, 1, 1], [1 / 6, 1, 1], [0, 0, 0]])
    np.testing.assert_allclose(hsv[6], [(4 + (0.2 - 0.4) / 0.6) / 6, 0.75, 0.8])
    np.testing.assert_allclose(C.hsv_to_rgb(hsv), rgb, atol=1e-15)


def _gauss_blur_reference(x, sigma):
    """Separable Gaussian, radius int(4 sigma + 0.5), edge ('nearest') padding, numpy only."""
    r = int(4 * sigma + 0.5)
    t = np.arange(-r, r + 1)
    g = np.exp(-0.5 * (t / sigma) ** 2)
    g /= g.sum()
    p = np.pad(x, ((0, 0), (r, r), (r, r), (0, 0)), mode="edge")
    rows = sum(g[i] * p[:, i:i + 32, :, :] for i in range(2 * r + 1))
    return sum(g[i] * rows[:, :, i:i + 32, :] for i in range(2 * r + 1))


@pytest.mark.parametrize("severity", C.SEVERITIES)
def test_gaussian_blur_against_explicit_convolution(severity, synth):
    c = C.PARAMS["gaussian_blur"][severity - 1]
    _assert_close_uint8(C.gaussian_blur(synth, severity), _round(_gauss_blur_reference(synth / 255.0, c)))


def test_defocus_kernel_closed_form_radius_one():
    """radius 1: the 5-pixel cross, each 1/5, blurred by the 3-tap Gaussian g (outer g g)."""
    s = 0.2
    g = np.exp(-np.array([1.0, 0.0, 1.0]) / (2 * s * s))
    g /= g.sum()
    cross = np.zeros((5, 5))
    cross[2, 1:4] = cross[1:4, 2] = 0.2
    gg = np.outer(g, g)
    want = np.zeros((5, 5))
    for i in range(5):
        for j in range(5):
            want[i, j] = sum(gg[a + 1, b + 1] * cross[i + a, j + b]
                             for a in (-1, 0, 1) for b in (-1, 0, 1) if 0 <= i + a < 5 and 0 <= j + b < 5)
    k = C.defocus_kernel(1.0, s)
    np.testing.assert_allclose(k, want, atol=1e-15)
    assert abs(k.sum() - 1) < 1e-12 and np.allclose(k, k.T) and np.allclose(k, k[::-1])


@pytest.mark.parametrize("severity", [1, 4])
def test_defocus_blur_against_explicit_correlation(severity, synth):
    k = C.defocus_kernel(*C.PARAMS["defocus_blur"][severity - 1])
    h = k.shape[0] // 2
    x = synth / 255.0
    p = np.pad(x, ((0, 0), (h, h), (h, h), (0, 0)), mode="reflect")  # numpy reflect = reflect-101
    want = sum(k[i, j] * p[:, i:i + 32, j:j + 32, :] for i in range(2 * h + 1) for j in range(2 * h + 1))
    _assert_close_uint8(C.defocus_blur(synth, severity), _round(want))


@pytest.mark.parametrize("severity", C.SEVERITIES)
def test_jpeg_equals_pillow_encode_decode(severity, synth):
    q = C.PARAMS["jpeg_compression"][severity - 1]
    out = C.jpeg_compression(synth, severity)
    for im, got in zip(synth, out):
        buf = io.BytesIO()
        Image.fromarray(im, "RGB").save(buf, "JPEG", quality=q)
        np.testing.assert_array_equal(got, np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))


@pytest.mark.parametrize("severity", C.SEVERITIES)
def test_pixelate_equals_pillow_box_down_up(severity, synth):
    side = int(32 * C.PARAMS["pixelate"][severity - 1])
    assert side == (30, 28, 27, 24, 20)[severity - 1]
    out = C.pixelate(synth, severity)
    for im, got in zip(synth, out):
        small = Image.fromarray(im, "RGB").resize((side, side), Image.BOX)
        np.testing.assert_array_equal(got, np.asarray(small.resize((32, 32), Image.BOX)))


@pytest.mark.parametrize("severity", C.SEVERITIES)
def test_gaussian_noise_moments(severity):
    """Mid-grey images: mean 128, variance (255 c)^2 + 1/12 (the rounding), no clipping."""
    c = C.PARAMS["gaussian_noise"][severity - 1]
    out = C.gaussian_noise(_grey(40), severity).astype(np.float64)  # 122,880 values
    assert abs(out.mean() - 128) < 4 * 255 * c / np.sqrt(out.size)
    assert abs(out.std() / np.sqrt((255 * c) ** 2 + 1 / 12) - 1) < 0.01


@pytest.mark.parametrize("severity", C.SEVERITIES)
def test_shot_noise_moments(severity):
    """Poisson(x c) / c: mean x, variance x / c (in [0, 1] units). Rounding to grey levels
    adds at most 1/4 level^2 and a covariance with the count: up to ~9 % of x / c at c = 250."""
    c = C.PARAMS["shot_noise"][severity - 1]
    v = 128 / 255
    out = C.shot_noise(_grey(40), severity).astype(np.float64) / 255
    assert abs(out.mean() - v) < 4 * np.sqrt(v / c / out.size) + 0.5 / 255 / 4
    assert abs(out.var() / (v / c) - 1) < 0.1


def test_noise_formulas_on_the_same_draws(synth):
    """Each image's generator (child i of the documented SeedSequence) drives the formula."""
    x = synth / 255.0
    for name, severity in (("gaussian_noise", 3), ("shot_noise", 4), ("speckle_noise", 5), ("impulse_noise", 5)):
        c = C.PARAMS[name][severity - 1]
        want = []
        for im, g in zip(x, C._rngs(name, severity, 11, len(x))):
            if name == "gaussian_noise":
                want.append(im + c * g.standard_normal(im.shape))
            elif name == "shot_noise":
                want.append(g.poisson(im * c) / c)
            elif name == "speckle_noise":
                want.append(im + im * c * g.standard_normal(im.shape))
            else:
                flip, salt = g.random(im.shape) < c, g.random(im.shape) < 0.5
                want.append(np.where(flip, salt.astype(np.float64), im))
        _assert_close_uint8(C.corrupt(synth, name, severity, seed=11), _round(np.array(want)))
    assert C._rngs("x", 1, 0, 2)[1].random() == np.random.default_rng(
        np.random.SeedSequence([0, zlib.crc32(b"x"), 1]).spawn(2)[1]).random()


@pytest.mark.parametrize("severity", C.SEVERITIES)
def test_speckle_noise_moments(severity):
    c = C.PARAMS["speckle_noise"][severity - 1]
    out = C.speckle_noise(_grey(40), severity).astype(np.float64)
    assert abs(out.mean() - 128) < 4 * 128 * c / np.sqrt(out.size)
    assert abs(out.std() / np.sqrt((128 * c) ** 2 + 1 / 12) - 1) < 0.01


@pytest.mark.parametrize("severity", C.SEVERITIES)
def test_impulse_noise_fraction(severity):
    c = C.PARAMS["impulse_noise"][severity - 1]
    out = C.impulse_noise(_grey(40), severity)
    changed = out != 128
    m = changed.size
    assert abs(changed.mean() - c) < 4 * np.sqrt(c * (1 - c) / m)
    assert set(np.unique(out[changed])) <= {0, 255}
    salt = (out == 255).sum() / changed.sum()
    assert abs(salt - 0.5) < 4 * np.sqrt(0.25 / changed.sum())


def _ramp(n):
    r, c = np.mgrid[0:32, 0:32]
    return np.broadcast_to((5 * c + 3 * r)[None, :, :, None], (n, 32, 32, 3)).astype(np.uint8).copy()


def _plane_residual(out):
    """Largest deviation of the central 12 x 12 pixels from their best-fit plane in (row, col)."""
    r, c = np.mgrid[10:22, 10:22]
    A = np.column_stack([r.ravel(), c.ravel(), np.ones(r.size)])
    worst = 0.0
    for im in out[..., 0].astype(np.float64):
        z = im[10:22, 10:22].ravel()
        coef = np.linalg.lstsq(A, z, rcond=None)[0]
        worst = max(worst, np.abs(A @ coef - z).max())
    return worst


@pytest.mark.parametrize("severity", C.SEVERITIES)
def test_elastic_is_geometric(severity):
    """Constant images stay constant; channels move together."""
    np.testing.assert_array_equal(C.elastic_transform(_grey(3, 77), severity), _grey(3, 77))
    out = C.elastic_transform(_ramp(3), severity)
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_zoom_blur_factors_and_scipy_zoom():
    """The script's np.arange end points give 7, 12, 16, 21, 26 factors; each clipped zoom
    equals scipy.ndimage.zoom(order=1) of the central crop, trimmed to 32 x 32."""
    from scipy.ndimage import zoom

    assert [len(z) for z in C.PARAMS["zoom_blur"]] == [7, 12, 16, 21, 26]
    x = np.random.default_rng(0).random((2, 32, 32, 3))
    for z in (1.0, 1.03, 1.1, 1.17, 1.25):
        ch = int(np.ceil(32 / z))
        top = (32 - ch) // 2
        for im, got in zip(x, C._clipped_zoom(x, z)):
            big = zoom(im[top:top + ch, top:top + ch], (z, z, 1), order=1)
            t = (big.shape[0] - 32) // 2
            np.testing.assert_allclose(got, big[t:t + 32, t:t + 32], atol=1e-12)


def test_zoom_blur_is_the_mean_of_the_zooms(synth):
    zooms = C.PARAMS["zoom_blur"][1]
    x = synth / 255.0
    want = (x + sum(C._clipped_zoom(x, z) for z in zooms)) / (len(zooms) + 1)
    _assert_close_uint8(C.zoom_blur(synth, 2), _round(want))
    np.testing.assert_array_equal(C.zoom_blur(_grey(2, 90), 5), _grey(2, 90))


def test_plasma_fractal_maps():
    rngs = C._rngs("fog", 3, 0, 4)
    p = C.plasma_fractal(rngs, 2.5)
    assert p.shape == (4, 32, 32)
    np.testing.assert_allclose(p.min(axis=(1, 2)), 0)
    np.testing.assert_allclose(p.max(axis=(1, 2)), 1)
    np.testing.assert_array_equal(p, C.plasma_fractal(C._rngs("fog", 3, 0, 4), 2.5))
    # a faster decay leaves less fine detail: smaller neighbour differences relative to the range
    rough = np.abs(np.diff(C.plasma_fractal(C._rngs("fog", 3, 0, 50), 1.75), axis=2)).mean()
    smooth = np.abs(np.diff(C.plasma_fractal(C._rngs("fog", 3, 0, 50), 3.0), axis=2)).mean()
    assert smooth < rough


@pytest.mark.parametrize("severity", C.SEVERITIES)
def test_fog_formula_on_the_same_draws(severity, synth):
    """(x + s p) max(x) / (max(x) + s) with p the image's plasma map; black stays black."""
    s, decay = C.PARAMS["fog"][severity - 1]
    x = synth / 255.0
    p = C.plasma_fractal(C._rngs("fog", severity, 2, len(x)), decay)[..., None]
    top = x.max(axis=(1, 2, 3), keepdims=True)
    _assert_close_uint8(C.fog(synth, severity, seed=2), _round((x + s * p) * top / (top + s)))
    np.testing.assert_array_equal(C.fog(_grey(2, 0), severity), _grey(2, 0))


# ------------------------------------------------------------------ the paper's own libraries
@pytest.mark.parametrize("severity", C.SEVERITIES)
def test_against_skimage(severity, synth):
    sk = pytest.importorskip("skimage")
    from skimage.filters import gaussian

    x = synth / 255.0
    c = C.PARAMS["brightness"][severity - 1]
    want = []
    for im in x:
        hsv = sk.color.rgb2hsv(im)
        hsv[:, :, 2] = np.clip(hsv[:, :, 2] + c, 0, 1)
        want.append(sk.color.hsv2rgb(hsv))
    _assert_close_uint8(C.brightness(synth, severity), _round(np.array(want)))
    s = C.PARAMS["gaussian_blur"][severity - 1]
    want = np.array([gaussian(im, sigma=s, channel_axis=-1) for im in x])
    _assert_close_uint8(C.gaussian_blur(synth, severity), _round(want))


@pytest.mark.parametrize("severity", C.SEVERITIES)
def test_defocus_against_opencv(severity, synth):
    cv2 = pytest.importorskip("cv2")
    radius, alias = C.PARAMS["defocus_blur"][severity - 1]
    t = np.arange(-8, 9)
    xx, yy = np.meshgrid(t, t)
    disk = ((xx**2 + yy**2) <= radius**2).astype(np.float32)
    disk /= disk.sum()
    kernel = cv2.GaussianBlur(disk, ksize=(3, 3), sigmaX=alias)
    k = C.defocus_kernel(radius, alias)
    h = k.shape[0] // 2
    padded = np.zeros((17, 17))
    padded[8 - h:9 + h, 8 - h:9 + h] = k
    np.testing.assert_allclose(padded, kernel, atol=1e-7)
    want = np.array([np.stack([cv2.filter2D(im[:, :, ch], -1, kernel) for ch in range(3)], -1)
                     for im in (synth / 255.0).astype(np.float32)])
    _assert_close_uint8(C.defocus_blur(synth, severity), _round(want.astype(np.float64)), tol=1e-3)  # float32


@pytest.mark.parametrize("severity", C.SEVERITIES)
def test_elastic_against_opencv_pipeline(severity, synth):
    """The script's pipeline (cv2 affine, skimage-smoothed fields, map_coordinates) on the same draws."""
    cv2 = pytest.importorskip("cv2")
    pytest.importorskip("skimage")
    from scipy.ndimage import map_coordinates
    from skimage.filters import gaussian

    alpha, sigma, jitter = C.PARAMS["elastic_transform"][severity - 1]
    want = []
    for im, g in zip(synth / 255.0, C._rngs("elastic_transform", severity, 7, len(synth))):
        off, u, w = g.uniform(-jitter, jitter, (3, 2)), g.uniform(-1, 1, (32, 32)), g.uniform(-1, 1, (32, 32))
        pts1 = np.float32([[26, 26], [26, 6], [6, 6]])
        M = cv2.getAffineTransform(pts1, (pts1 + off).astype(np.float32))
        warped = cv2.warpAffine(im.astype(np.float32), M, (32, 32), borderMode=cv2.BORDER_REFLECT_101)
        dx = gaussian(u, sigma, mode="reflect", truncate=3) * alpha
        dy = gaussian(w, sigma, mode="reflect", truncate=3) * alpha
        xs, ys, zs = np.meshgrid(np.arange(32), np.arange(32), np.arange(3))
        idx = ((ys + dy[..., None]).reshape(-1, 1), (xs + dx[..., None]).reshape(-1, 1), zs.reshape(-1, 1))
        want.append(map_coordinates(warped, idx, order=1, mode="reflect").reshape(32, 32, 3))
    got = C.elastic_transform(synth, severity, seed=7)
    diff = np.abs(got - np.rint(_round(np.array(want))))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.995


# ------------------------------------------------------------------ the cache
def test_cache_writes_once_then_reads(synth, tmp_path, monkeypatch):
    cache = tmp_path / "work" / "shift"
    a = C.corrupted_test_set(synth, "gaussian_noise", 2, cache, seed=1)
    np.testing.assert_array_equal(a, C.corrupt(synth, "gaussian_noise", 2, seed=1))
    files = sorted(p.name for p in cache.iterdir())
    assert len(files) == 1 and files[0].startswith("gaussian_noise-s2-") and files[0].endswith(".npy")

    def boom(*a, **k):
        raise AssertionError("recomputed instead of reading the cache")

    monkeypatch.setattr(C, "corrupt", boom)
    np.testing.assert_array_equal(C.corrupted_test_set(synth, "gaussian_noise", 2, cache, seed=1), a)


def test_cache_keys_separate_inputs(synth, tmp_path):
    C.corrupted_test_set(synth, "contrast", 1, tmp_path)
    C.corrupted_test_set(synth[:4], "contrast", 1, tmp_path)
    C.corrupted_test_set(synth, "contrast", 2, tmp_path)
    C.corrupted_test_set(synth, "gaussian_noise", 1, tmp_path, seed=0)
    C.corrupted_test_set(synth, "gaussian_noise", 1, tmp_path, seed=1)
    C.corrupted_test_set(synth, "contrast", 1, tmp_path, seed=5)  # the seed does not matter here
    assert len(list(tmp_path.iterdir())) == 5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_cache_recovers_from_a_broken_file(synth, tmp_path):
    a = C.corrupted_test_set(synth, "pixelate", 3, tmp_path)
    (f,) = tmp_path.iterdir()
    f.write_bytes(f.read_bytes()[:100])
    np.testing.assert_array_equal(C.corrupted_test_set(synth, "pixelate", 3, tmp_path), a)
    np.testing.assert_array_equal(np.load(f, allow_pickle=False), a)


def test_cache_needs_a_directory(synth, tmp_path):
    with pytest.raises(InputError, match="cache_dir: expected a directory"):
        C.corrupted_test_set(synth, "contrast", 1, None)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is not a directory"):
        C.corrupted_test_set(synth, "contrast", 1, tmp_path / "file")


def test_iterating_all_sets(synth, tmp_path):
    got = [(n, s) for n, s, x in C.corrupted_test_sets(synth[:2], tmp_path, names=["contrast", "pixelate"],
                                                      severities=(1, 5))]
    assert got == [("contrast", 1), ("contrast", 5), ("pixelate", 1), ("pixelate", 5)]
    assert len(list(tmp_path.iterdir())) == 4
    with pytest.raises(InputError, match="severity"):
        list(C.corrupted_test_sets(synth[:2], tmp_path, severities=(0,)))


def test_strided_input_same_as_contiguous(synth):
    view = synth[:4, ::-1]
    for name in C.CORRUPTIONS:
        np.testing.assert_array_equal(C.corrupt(view, name, 2, 1), C.corrupt(np.ascontiguousarray(view), name, 2, 1))
