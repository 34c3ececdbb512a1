"""Out-of-distribution inputs for a CIFAR-10 classifier, built locally (no download).

Far OOD (inputs unlike any training image; an MSP detector should find them easily):

  digits          scikit-learn's bundled handwritten digits (1,797 images, 8 x 8, ink
                  levels 0..16), levels scaled to grey ``rint(v * 255 / 16)``, upsampled
                  4x to 32 x 32 by pixel replication (nearest neighbour; ``resample=
                  "bilinear"`` uses Pillow's bilinear filter instead), grey copied to R, G, B:
                  white digits on black.
  uniform_noise   every pixel channel i.i.d. uniform on 0..255 (Uniform[0, 1] noise).
  gaussian_noise  every pixel channel i.i.d. N(0.5, 0.5^2) clipped to [0, 1], then
                  rounded to 0..255.

  The two noise sets follow the synthetic anomalies of Hendrycks, Mazeika & Dietterich
  2019 ("Deep Anomaly Detection with Outlier Exposure", ICLR; hendrycks/outlier-exposure,
  ``SVHN/test.py``: "Gaussian Noise (mu = sigma = 0.5)" clipped to [0, 1] and
  "Uniform[0,1] Noise"); Hendrycks & Gimpel 2017 ("A Baseline for Detecting Misclassified
  and Out-of-Distribution Examples in Neural Networks", ICLR) use Gaussian and uniform
  noise images as OOD for CIFAR-10 with the maximum softmax probability (MSP) baseline.

Near OOD (natural images of the same kind, unseen classes):

  held_out_classes  train on 8 CIFAR-10 classes, treat the other 2 as unseen
                    (:func:`held_out_class_split`): the held-out test images are
                    semantically new but share the statistics of the training images, the
                    hard case (Ahmed & Courville 2020, "Detecting Semantic Anomalies", AAAI,
                    hold out CIFAR-10 classes; the near / far terms as in Fort, Ren &
                    Lakshminarayanan 2021, "Exploring the Limits of Out-of-Distribution
                    Detection", NeurIPS). The default holds out dog (5) and truck (9): each
                    keeps a close sibling (cat, automobile) among the training classes.

Ovadia et al. 2019 ("Can You Trust Your Model's Uncertainty?", NeurIPS) evaluate CIFAR-10
models on shifted data (CIFAR-10-C, see corruptions.py) and on OOD inputs (SVHN) with the
same metrics; these sets stand in for SVHN where nothing can be downloaded.

All images are uint8 (n, 32, 32, 3), like the CIFAR-10 arrays of data.py.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from calibrate._core.validation import InputError, check_labels

OOD_SETS = {"held_out_classes": "near", "digits": "far", "uniform_noise": "far", "gaussian_noise": "far"}
FAR_OOD = tuple(k for k, v in OOD_SETS.items() if v == "far")
DEFAULT_HELD_OUT = (5, 9)  # dog, truck
N_DIGITS = 1797


def _check_count(n, name="n", most=None) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"{name}: expected a positive integer number of images, got {n!r}")
    if most is not None and n > most:
        raise InputError(f"{name}: expected at most {most} images (the whole set), got {n}")
    return int(n)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed: expected a non-negative integer, got {seed!r}")
    return int(seed)


def _rng(kind: str, seed: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(kind.encode())]))


def digits_images(n: int | None = None, seed: int = 0, resample: str = "nearest"):
    """scikit-learn's digits as CIFAR-shaped images: ((n, 32, 32, 3) uint8, (n,) int64 digit).

    n: None for all 1,797 images in their stored order, else a seeded sample without
    replacement (sorted). resample: "nearest" (each 8 x 8 pixel becomes a 4 x 4 block) or
    "bilinear" (Pillow). Grey level ``rint(v * 255 / 16)`` for ink level v in 0..16.
    """
    from sklearn.datasets import load_digits

    if resample not in ("nearest", "bilinear"):
        raise InputError(f"resample: expected 'nearest' or 'bilinear', got {resample!r}")
    d = load_digits()
    grey = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)  # (1797, 8, 8)
    labels = d.target.astype(np.int64)
    if n is not None:
        idx = np.sort(_rng("digits", _check_seed(seed)).choice(grey.shape[0], _check_count(n, most=N_DIGITS),
                                                              replace=False))
        grey, labels = grey[idx], labels[idx]
    if resample == "nearest":
        big = grey.repeat(4, axis=1).repeat(4, axis=2)
    else:
        from PIL import Image

        big = np.stack([np.asarray(Image.fromarray(g, "L").resize((32, 32), Image.Resampling.BILINEAR))
                        for g in grey]) if grey.shape[0] else np.empty((0, 32, 32), np.uint8)
    return np.ascontiguousarray(np.repeat(big[..., None], 3, axis=-1)), labels


def uniform_noise_images(n: int, seed: int = 0) -> np.ndarray:
    """(n, 32, 32, 3) uint8, every value i.i.d. uniform on 0..255."""
    n, seed = _check_count(n), _check_seed(seed)
    return _rng("uniform_noise", seed).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


def gaussian_noise_images(n: int, seed: int = 0, mean: float = 0.5, std: float = 0.5) -> np.ndarray:
    """(n, 32, 32, 3) uint8: ``rint(255 clip(N(mean, std^2), 0, 1))`` per value (mean, std in [0, 1] units)."""
    n, seed = _check_count(n), _check_seed(seed)
    if not (np.isfinite(mean) and np.isfinite(std) and std > 0):
        raise InputError(f"mean, std: expected finite numbers with std > 0, got {mean!r}, {std!r}")
    z = _rng("gaussian_noise", seed).normal(mean, std, size=(n, 32, 32, 3))
    return np.rint(np.clip(z, 0.0, 1.0) * 255.0).astype(np.uint8)


def far_ood_images(name: str, n: int, seed: int = 0) -> np.ndarray:
    """(n, 32, 32, 3) uint8 images of one far-OOD set: "digits", "uniform_noise" or "gaussian_noise"."""
    if name not in FAR_OOD:
        raise InputError(f"far OOD set: expected one of {', '.join(FAR_OOD)}, got {name!r}")
    if name == "digits":
        return digits_images(n, seed)[0]
    return uniform_noise_images(n, seed) if name == "uniform_noise" else gaussian_noise_images(n, seed)


@dataclass(frozen=True)
class HeldOutSplit:
    """Rows of one labelled set split into seen classes (in) and unseen classes (out).

    in_mask, out_mask: (n,) bool, complementary. remap: (k,) int64, new label of each
    original class (0..k-h-1 in class order) or -1 for a held-out class. in_labels:
    (n_in,) int64, ``remap[labels[in_mask]]``. kept, held_out: original class indices.
    """

    in_mask: np.ndarray
    out_mask: np.ndarray
    remap: np.ndarray
    in_labels: np.ndarray
    kept: tuple[int, ...]
    held_out: tuple[int, ...]

    @property
    def n_classes_in(self) -> int:
        return len(self.kept)


def held_out_class_split(labels, held_out=DEFAULT_HELD_OUT, n_classes: int = 10) -> HeldOutSplit:
    """Near-OOD split: ``labels`` (n,) int in [0, n_classes); ``held_out`` classes become unseen.

    Call it on the train, validation and test labels alike (same ``held_out``): train and
    calibrate on ``in_mask`` rows with ``in_labels``; the test rows of ``out_mask`` are the
    near-OOD inputs, the test rows of ``in_mask`` the in-distribution ones.
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 3:
        raise InputError(f"n_classes: expected an integer >= 3, got {n_classes!r}")
    y = check_labels(labels, None, int(n_classes))
    items = list(np.atleast_1d(np.asarray(held_out, dtype=object))) if held_out is not None else []
    ok = bool(items) and all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in items)
    h = [int(c) for c in items] if ok else []
    if not ok or len(set(h)) != len(h) or min(h) < 0 or max(h) >= n_classes or len(h) > n_classes - 2:
        raise InputError(
            f"held_out: expected 1 to {n_classes - 2} distinct class indices in [0, {n_classes}), got {held_out!r}"
        )
    kept = tuple(c for c in range(n_classes) if c not in h)
    remap = np.full(n_classes, -1, np.int64)
    remap[list(kept)] = np.arange(len(kept))
    out_mask = np.isin(y, h)
    in_mask = ~out_mask
    return HeldOutSplit(in_mask, out_mask, remap, remap[y[in_mask]], kept, tuple(sorted(h)))
