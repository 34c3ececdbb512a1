"""CIFAR-10-C style corruptions at five severities, seeded, on uint8 (n, 32, 32, 3) images.

Hendrycks & Dietterich 2019, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations" (ICLR). Severity parameters are those of the authors' CIFAR
script, hendrycks/robustness ``ImageNet-C/create_c/make_cifar_c.py`` (commit ca360085),
listed here in severity order 1..5 (pixel values are scaled to [0, 1] before use):

  gaussian_noise     x + N(0, c^2)                     c = .04 .06 .08 .09 .10
  shot_noise         Poisson(x c) / c                  c = 500 250 100 75 50
  impulse_noise      salt & pepper, fraction c         c = .01 .02 .03 .05 .07
  speckle_noise      x + x N(0, c^2)                   c = .06 .10 .12 .16 .20
  gaussian_blur      Gaussian filter, sigma c          c = .4 .6 .7 .8 1
  defocus_blur       disk(radius r, alias blur s)      (r, s) = (.3, .4) (.4, .5) (.5, .6) (1, .2) (1.5, .1)
  zoom_blur          mean of x and its zooms by z      z = np.arange(1, e, .01), e = 1.06 1.11 1.16 1.21 1.26
                                                       (7, 12, 16, 21, 26 factors: arange's float end point)
  fog                (x + s plasma) max x / (max x + s) (s, decay) = (.2, 3) (.5, 3) (.75, 2.5) (1, 2) (1.5, 1.75)
  contrast           (x - mean) c + mean               c = .75 .5 .4 .3 .15
  brightness         V + c in HSV                      c = .05 .1 .15 .2 .3
  jpeg_compression   JPEG quality q                    q = 80 65 58 50 40
  pixelate           BOX resize to int(32 c), back     c = .95 .9 .85 .75 .65
  elastic_transform  random affine (corner jitter a), then a smooth displacement field
                     (amplitude alpha, smoothing sigma); (alpha, sigma, a) =
                     32 x (0, 0, .08) (.05, .2, .07) (.08, .06, .06) (.1, .04, .05) (.1, .03, .03)

11 of the paper's 15 benchmark corruptions plus two of its four held-out ones (speckle
noise, Gaussian blur). Not here: motion blur and snow (ImageMagick's motion blur), frost
(texture photographs), glass blur (a per-pixel Python swap loop, slow), and the held-out
spatter (OpenCV edge and distance transforms) and saturate (not monotone by design).
Adaptations, all numpy / scipy / Pillow:

- ``gaussian_blur``: ``scipy.ndimage.gaussian_filter`` over the two spatial axes,
  ``mode="nearest"``, ``truncate=4`` (what ``skimage.filters.gaussian`` calls).
- ``defocus_blur``: the script's kernel (a 17 x 17 aliased disk of radius r, normalised,
  then ``cv2.GaussianBlur`` 3 x 3 with sigma s) built in numpy with the 3-tap Gaussian
  ``exp(-t^2 / 2 s^2)``, applied like ``cv2.filter2D`` (correlation, border reflect-101 =
  scipy ``mode="mirror"``); the kernel is cropped to its non-zero support (exact).
- ``zoom_blur``: the script's ``clipped_zoom`` (``scipy.ndimage.zoom(order=1)`` of the
  central ceil(32 / z) crop) written as a (32, ceil(32 / z)) bilinear matrix applied on
  both sides (the same numbers as scipy's zoom to 1e-15, in float64 instead of float32).
- ``fog``: the script's diamond-square ``plasma_fractal`` (mapsize 32) with each image's
  Generator in place of ``np.random``.
- ``brightness``: RGB <-> HSV in numpy (the formulas of ``skimage.color.rgb2hsv``).
- ``impulse_noise``: like ``skimage.util.random_noise(mode="s&p")``: each element (pixel
  channel) is replaced with probability c, by 0 or 1 with equal odds.
- ``elastic_transform``: ``cv2.getAffineTransform`` (an exact solve for the three jittered
  points) and ``cv2.warpAffine`` (bilinear, reflect-101) become a 3 x 3 solve and
  ``scipy.ndimage.map_coordinates(order=1, mode="mirror")``; the displacement fields are
  the script's (``gaussian(uniform(-1, 1), sigma, mode="reflect", truncate=3) * alpha``,
  then bilinear ``map_coordinates(mode="reflect")``). Same draws through the OpenCV
  pipeline give the same images to within one grey level (OpenCV's fixed-point bilinear
  weights). As in the script, severity 1 is a pure affine jitter and the jitter shrinks as
  the elastic part grows, so the pixel distance from the clean image *decreases* with
  severity for this corruption (about 22 -> 14 grey levels on CIFAR-10 test images).
- Output: ``clip(x, 0, 1) * 255`` rounded to the nearest integer (the script truncates
  with ``np.uint8``, a -0.5 grey-level bias).
- Input: the CIFAR-10 test images of the JPEG copy (see data.py), not the original
  release the script read.

Randomness: image ``i`` gets its own Generator, child ``i`` of
``SeedSequence([seed, crc32(name), severity])``, so a result depends only on (image,
position, name, severity, seed): ``corrupt(x[:m], ...) == corrupt(x, ...)[:m]``.
The deterministic corruptions (blurs, contrast, brightness, JPEG, pixelate) ignore ``seed``.
"""

from __future__ import annotations

import hashlib
import io
import zlib
from pathlib import Path

import numpy as np
from scipy import ndimage

from calibrate._core.validation import InputError, to_numpy
from calibrate.io.readers import atomic_write_bytes

SEVERITIES = (1, 2, 3, 4, 5)
IMAGE_SHAPE = (32, 32, 3)
VERSION = 1  # bump when any corruption's output changes: it is part of the cache key
_CHUNK = 500

PARAMS = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot_noise": (500, 250, 100, 75, 50),
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
    "speckle_noise": (0.06, 0.1, 0.12, 0.16, 0.2),
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1)),
    "zoom_blur": tuple(np.arange(1, end, 0.01) for end in (1.06, 1.11, 1.16, 1.21, 1.26)),
    "fog": ((0.2, 3.0), (0.5, 3.0), (0.75, 2.5), (1.0, 2.0), (1.5, 1.75)),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "jpeg_compression": (80, 65, 58, 50, 40),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
    "elastic_transform": tuple(
        (32 * a, 32 * s, 32 * j)
        for a, s, j in ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03))
    ),
}
RANDOM = frozenset({"gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "fog", "elastic_transform"})


# ------------------------------------------------------------------ per-chunk implementations
# float ones: x (m, 32, 32, 3) float64 in [0, 1] -> float64 (clipped and rounded by the caller)
def _normal(rngs, shape):
    return np.stack([g.standard_normal(shape) for g in rngs])


def _gaussian_noise(x, c, rngs):
    return x + c * _normal(rngs, x.shape[1:])


def _shot_noise(x, c, rngs):
    return np.stack([g.poisson(xi * c) for g, xi in zip(rngs, x)]) / c


def _impulse_noise(x, c, rngs):
    out = x.copy()
    for i, g in enumerate(rngs):
        flipped = g.random(x.shape[1:]) < c
        salt = g.random(x.shape[1:]) < 0.5
        out[i][flipped] = salt[flipped]
    return out


def _speckle_noise(x, c, rngs):
    return x + x * c * _normal(rngs, x.shape[1:])


def _gaussian_blur(x, c, rngs):
    return ndimage.gaussian_filter(x, sigma=(0, c, c, 0), mode="nearest", truncate=4.0)


def defocus_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """The make_cifar_c.py defocus kernel, cropped to its support: (2h+1, 2h+1) float64.

    An aliased disk ``X^2 + Y^2 <= radius^2`` on the grid -8..8 (radius <= 8), normalised to
    sum 1, then blurred separably by the 3-tap Gaussian ``exp(-t^2 / (2 alias_blur^2))``,
    t = -1, 0, 1, normalised (``cv2.GaussianBlur(ksize=(3, 3))``).
    """
    if not 0 < radius <= 8:
        raise InputError(f"radius: expected a value in (0, 8], got {radius!r}")
    t = np.arange(-8, 9)
    xx, yy = np.meshgrid(t, t)
    disk = (xx**2 + yy**2 <= radius**2).astype(np.float64)
    disk /= disk.sum()
    g = np.exp(-np.arange(-1, 2) ** 2 / (2.0 * alias_blur**2))
    g /= g.sum()
    k = ndimage.correlate1d(ndimage.correlate1d(disk, g, axis=0, mode="mirror"), g, axis=1, mode="mirror")
    nz = np.flatnonzero(np.abs(k).sum(0) > 0)
    h = int(max(8 - nz.min(), nz.max() - 8))
    return k[8 - h:9 + h, 8 - h:9 + h]


def _defocus_blur(x, c, rngs):
    k = defocus_kernel(*c)
    return ndimage.correlate(x, k[None, :, :, None], mode="mirror")


def _linear_zoom_matrix(n, size):
    """(size, n) order-1 resampling matrix, end points aligned: sample o reads position
    o (n - 1) / (size - 1), the coordinates of ``scipy.ndimage.zoom(order=1)``."""
    pos = np.arange(size) * ((n - 1) / (size - 1))
    i0 = np.minimum(np.floor(pos).astype(np.int64), n - 2)
    w = pos - i0
    W = np.zeros((size, n))
    W[np.arange(size), i0] = 1 - w
    W[np.arange(size), i0 + 1] += w
    return W


def _clipped_zoom(x, z):
    """Zoom (m, 32, 32, c) by z about the centre and keep the central 32 x 32 (the script's
    clipped_zoom: crop ceil(32 / z), ``scipy.ndimage.zoom(order=1)`` to round(ceil(32 / z) z))."""
    ch = int(np.ceil(32 / z))
    top = (32 - ch) // 2
    size = int(round(ch * z))
    trim = (size - 32) // 2
    W = _linear_zoom_matrix(ch, size)[trim:trim + 32]  # only the kept rows
    crop = np.moveaxis(x[:, top:top + ch, top:top + ch], -1, 1)  # (m, c, ch, ch)
    return np.moveaxis(W @ crop @ W.T, 1, -1)


def _zoom_blur(x, zooms, rngs):
    out = np.zeros_like(x)
    for z in zooms:
        out += _clipped_zoom(x, z)
    return (x + out) / (len(zooms) + 1)


def plasma_fractal(rngs, wibbledecay: float, mapsize: int = 32) -> np.ndarray:
    """(m, mapsize, mapsize) float64 in [0, 1], one map per Generator: the script's
    diamond-square height map.

    Starting from wibble = 100, each level sets the new points to the mean of their 4
    neighbours plus ``wibble * U(-wibble, wibble)`` (as the script does: squares, then the
    two diamond sets), then ``wibble /= wibbledecay``; each map is scaled to [0, 1].
    """
    a = np.zeros((len(rngs), mapsize, mapsize))
    step, wibble = mapsize, 100.0

    def wibbled_mean(s):
        return s / 4 + wibble * np.stack([g.uniform(-wibble, wibble, s.shape[1:]) for g in rngs])

    while step >= 2:
        half = step // 2
        corners = a[:, 0::step, 0::step]
        sq = corners + np.roll(corners, -1, axis=1)
        sq += np.roll(sq, -1, axis=2)
        a[:, half::step, half::step] = wibbled_mean(sq)
        dr, ul = a[:, half::step, half::step], a[:, 0::step, 0::step]
        a[:, 0::step, half::step] = wibbled_mean(dr + np.roll(dr, 1, axis=1) + ul + np.roll(ul, -1, axis=2))
        a[:, half::step, 0::step] = wibbled_mean(dr + np.roll(dr, 1, axis=2) + ul + np.roll(ul, -1, axis=1))
        step //= 2
        wibble /= wibbledecay
    a -= a.min(axis=(1, 2), keepdims=True)
    return a / a.max(axis=(1, 2), keepdims=True)


def _fog(x, c, rngs):
    strength, decay = c
    fog = plasma_fractal(rngs, decay)[..., None]
    top = x.max(axis=(1, 2, 3), keepdims=True)
    return (x + strength * fog) * top / (top + strength)

def _contrast(x, c, rngs):
    m = x.mean(axis=(1, 2), keepdims=True)
    return (x - m) * c + m


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) RGB in [0, 1] -> (..., 3) HSV in [0, 1] (the formulas of skimage.color.rgb2hsv)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = rgb.max(-1)
    delta = v - rgb.min(-1)
    safe_v = np.where(v > 0, v, 1.0)
    s = np.where(v > 0, delta / safe_v, 0.0)
    safe_d = np.where(delta > 0, delta, 1.0)
    h = np.where(b == v, 4.0 + (r - g) / safe_d, 0.0)
    h = np.where(g == v, 2.0 + (b - r) / safe_d, h)
    h = np.where(r == v, (g - b) / safe_d, h)
    h = np.where(delta > 0, (h / 6.0) % 1.0, 0.0)
    return np.stack([h, s, v], axis=-1)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """(..., 3) HSV in [0, 1] -> (..., 3) RGB in [0, 1], the inverse of :func:`rgb_to_hsv`.

    Channel n in (5, 3, 1) for (R, G, B): ``V - V S clip(min(k, 4 - k), 0, 1)`` with
    ``k = (n + 6 H) mod 6`` (the piecewise-linear form of the usual six-sector formula).
    """
    h, s, v = (hsv[..., i, None] for i in range(3))
    k = (np.array([5.0, 3.0, 1.0]) + 6.0 * h) % 6.0
    return v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _brightness(x, c, rngs):
    hsv = rgb_to_hsv(x)
    hsv[..., 2] = np.clip(hsv[..., 2] + c, 0.0, 1.0)
    return hsv_to_rgb(hsv)


_PTS = np.array([[26.0, 26.0], [26.0, 6.0], [6.0, 6.0]])  # (x, y): centre 16 +- 32 // 3, as the script


def _elastic_transform(x, c, rngs):
    alpha, sigma, jitter = c
    m = x.shape[0]
    draws = [(g.uniform(-jitter, jitter, (3, 2)), g.uniform(-1, 1, (32, 32)), g.uniform(-1, 1, (32, 32)))
             for g in rngs]
    # affine M with M [p, 1] = p + jitter for the three points; warpAffine samples src = M^-1 dst
    P = np.hstack([_PTS, np.ones((3, 1))])
    MT = np.linalg.inv(P) @ np.stack([_PTS + d[0] for d in draws])  # (m, 3, 2): rows A^T, t
    A, t = np.transpose(MT[:, :2, :], (0, 2, 1)), MT[:, 2, :]
    Ainv = np.linalg.inv(A)
    rows, cols = np.mgrid[0:32, 0:32].astype(np.float64)
    dst = np.stack([cols, rows], -1)[None] - t[:, None, None, :]  # (m, 32, 32, 2) as (x, y)
    src = np.einsum("mij,mhwj->mhwi", Ainv, dst)

    def sample(img, y, xx, mode):  # bilinear, each image and channel on its own 32 x 32 grid
        out = np.empty_like(img)
        for i in range(m):
            for ch in range(3):
                out[i, :, :, ch] = ndimage.map_coordinates(img[i, :, :, ch], (y[i], xx[i]), order=1, mode=mode)
        return out

    warped = sample(x, src[..., 1], src[..., 0], "mirror")
    fields = np.stack([[d[1], d[2]] for d in draws])  # (m, 2, 32, 32)
    if sigma > 0:
        fields = ndimage.gaussian_filter(fields, sigma=(0, 0, sigma, sigma), mode="reflect", truncate=3.0)
    dx, dy = fields[:, 0] * alpha, fields[:, 1] * alpha
    return sample(warped, rows + dy, cols + dx, "reflect")


# uint8 ones: (m, 32, 32, 3) uint8 -> uint8, through Pillow as the script does
def _jpeg_compression(u8, q, rngs):
    from PIL import Image

    out = np.empty_like(u8)
    for i, im in enumerate(u8):
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, format="JPEG", quality=int(q))
        buf.seek(0)
        with Image.open(buf) as dec:
            out[i] = np.asarray(dec.convert("RGB"))
    return out


def _pixelate(u8, c, rngs):
    from PIL import Image

    side = int(32 * c)
    out = np.empty_like(u8)
    for i, im in enumerate(u8):
        small = Image.fromarray(im).resize((side, side), Image.Resampling.BOX)
        out[i] = np.asarray(small.resize((32, 32), Image.Resampling.BOX))
    return out


_IMPL = {
    "gaussian_noise": ("float", _gaussian_noise),
    "shot_noise": ("float", _shot_noise),
    "impulse_noise": ("float", _impulse_noise),
    "speckle_noise": ("float", _speckle_noise),
    "gaussian_blur": ("float", _gaussian_blur),
    "defocus_blur": ("float", _defocus_blur),
    "zoom_blur": ("float", _zoom_blur),
    "fog": ("float", _fog),
    "contrast": ("float", _contrast),
    "brightness": ("float", _brightness),
    "jpeg_compression": ("uint8", _jpeg_compression),
    "pixelate": ("uint8", _pixelate),
    "elastic_transform": ("float", _elastic_transform),
}


# ------------------------------------------------------------------ validation and the public API
def check_images(images, name: str = "images") -> np.ndarray:
    """uint8 (n, 32, 32, 3) images (n >= 0), or an InputError saying what was got."""
    arr = to_numpy(images, name)
    if arr.ndim != 4 or arr.shape[1:] != IMAGE_SHAPE:
        raise InputError(f"{name}: expected uint8 images of shape (n, 32, 32, 3), got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise InputError(f"{name}: expected uint8 images (0..255) of shape (n, 32, 32, 3), got dtype {arr.dtype}")
    return arr


def _check_name(name) -> str:
    if not isinstance(name, str) or name not in _IMPL:
        raise InputError(f"corruption: expected one of {', '.join(_IMPL)}, got {name!r}")
    return name


def _check_severity(severity) -> int:
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 1 <= severity <= 5:
        raise InputError(f"severity: expected an integer from 1 to 5 (CIFAR-10-C levels), got {severity!r}")
    return int(severity)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed: expected a non-negative integer, got {seed!r}")
    return int(seed)


def _rngs(name, severity, seed, n):
    ss = np.random.SeedSequence([seed, zlib.crc32(name.encode()), severity])
    return [np.random.default_rng(s) for s in ss.spawn(n)]


def corrupt(images, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """Corrupt uint8 images: (n, 32, 32, 3) uint8 -> (n, 32, 32, 3) uint8 (a new array).

    name: a key of :data:`CORRUPTIONS`; severity: 1..5; seed: a non-negative integer
    (ignored by the deterministic corruptions). See the module docstring for the formulas.
    """
    x = check_images(images)
    name, severity, seed = _check_name(name), _check_severity(severity), _check_seed(seed)
    kind, fn = _IMPL[name]
    c = PARAMS[name][severity - 1]
    rngs = _rngs(name, severity, seed, x.shape[0]) if name in RANDOM else [None] * x.shape[0]
    out = np.empty_like(x)
    for lo in range(0, x.shape[0], _CHUNK):
        chunk, g = x[lo:lo + _CHUNK], rngs[lo:lo + _CHUNK]
        if kind == "uint8":
            out[lo:lo + _CHUNK] = fn(chunk, c, g)
        else:
            y = fn(chunk.astype(np.float64) / 255.0, c, g)
            out[lo:lo + _CHUNK] = np.rint(np.clip(y, 0.0, 1.0) * 255.0).astype(np.uint8)
    return out


def _public(name):
    def fn(images, severity: int, seed: int = 0) -> np.ndarray:
        return corrupt(images, name, severity, seed)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (f"CIFAR-10-C {name.replace('_', ' ')}: (n, 32, 32, 3) uint8 -> uint8; severity 1..5 "
                  f"-> PARAMS['{name}'][severity - 1]; ``corrupt(images, '{name}', severity, seed)``.")
    return fn


gaussian_noise = _public("gaussian_noise")
shot_noise = _public("shot_noise")
impulse_noise = _public("impulse_noise")
speckle_noise = _public("speckle_noise")
gaussian_blur = _public("gaussian_blur")
defocus_blur = _public("defocus_blur")
zoom_blur = _public("zoom_blur")
fog = _public("fog")
contrast = _public("contrast")
brightness = _public("brightness")
jpeg_compression = _public("jpeg_compression")
pixelate = _public("pixelate")
elastic_transform = _public("elastic_transform")

CORRUPTIONS = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "speckle_noise": speckle_noise,
    "gaussian_blur": gaussian_blur,
    "defocus_blur": defocus_blur,
    "zoom_blur": zoom_blur,
    "fog": fog,
    "contrast": contrast,
    "brightness": brightness,
    "jpeg_compression": jpeg_compression,
    "pixelate": pixelate,
    "elastic_transform": elastic_transform,
}


def cache_key(images: np.ndarray, name: str, severity: int, seed: int) -> str:
    """Hex digest of (images' bytes and shape, name, severity, seed if used, VERSION)."""
    h = hashlib.blake2b(digest_size=10)
    h.update(f"v{VERSION}|{name}|{severity}|{seed if name in RANDOM else '-'}|{images.shape}".encode())
    h.update(np.ascontiguousarray(images).data)
    return h.hexdigest()


def corrupted_test_set(images, name: str, severity: int, cache_dir, seed: int = 0) -> np.ndarray:
    """:func:`corrupt`, cached as ``cache_dir/NAME-sS-KEY.npy`` (written atomically).

    cache_dir: a directory the caller owns (e.g. the run's work folder; created if
    missing), never the read-only data folder. The key covers the images' content, so a
    different subset gets its own file. A cached file that is unreadable or of the wrong
    shape is recomputed and replaced; files are read with ``allow_pickle=False``.
    """
    x = check_images(images)
    name, severity, seed = _check_name(name), _check_severity(severity), _check_seed(seed)
    if cache_dir is None:
        raise InputError("cache_dir: expected a directory for the corrupted images (e.g. the run's work folder), got None")
    cache_dir = Path(cache_dir)
    if cache_dir.exists() and not cache_dir.is_dir():
        raise InputError(f"cache_dir: '{cache_dir}' exists and is not a directory")
    path = cache_dir / f"{name}-s{severity}-{cache_key(x, name, severity, seed)}.npy"
    if path.is_file():
        try:
            cached = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError):
            cached = None
        if cached is not None and cached.shape == x.shape and cached.dtype == np.uint8:
            return cached
    out = corrupt(x, name, severity, seed)
    cache_dir.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.save(buf, out, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())
    return out


def corrupted_test_sets(images, cache_dir, names=None, severities=SEVERITIES, seed: int = 0):
    """Yield ``(name, severity, images)`` for every corruption in ``names`` (default: all)
    at every severity, each through :func:`corrupted_test_set` (cached under ``cache_dir``)."""
    names = list(CORRUPTIONS) if names is None else [_check_name(n) for n in names]
    severities = [_check_severity(s) for s in severities]
    for name in names:
        for severity in severities:
            yield name, severity, corrupted_test_set(images, name, severity, cache_dir, seed)
