"""CIFAR-10: read it from either public layout, decode once, cache uint8 arrays, split.

Layouts accepted under ``root``:
  image folders  ``train/<class>/*.jpg|png`` and ``test/<class>/*``, class folders sorted
                 alphabetically give labels 0..9 (the JPEG copy in ../shared/data/cifar10)
  original       the "python version" release: ``data_batch_1..5`` and ``test_batch``
                 (also inside ``cifar-10-batches-py/``). These are pickles: they are read
                 with a restricted unpickler that accepts only the dict / list / bytes /
                 numpy-array content they hold, never with plain ``pickle.load``.

``load_cifar10`` returns ``(x_train (50000, 32, 32, 3) uint8, y_train (50000,) int64,
x_test (10000, 32, 32, 3) uint8, y_test (10000,) int64)`` and caches them as one .npz
where the caller says (``cache_dir``, else ``$CALIBRATE_CACHE``; without either nothing is
cached; ``calibrate experiment`` uses WORK/cache), never in the data folder or the home
directory unasked. ``split_train_val`` makes the seeded, stratified
45,000 / 5,000 split of Guo et al. 2017.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import urllib.request
from pathlib import Path

import numpy as np

from calibrate._core.validation import InputError
from calibrate.io.readers import atomic_save_npz

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


def default_cache_dir() -> Path | None:
    """``$CALIBRATE_CACHE`` if set, else None (no cache)."""
    env = os.environ.get("CALIBRATE_CACHE")
    return Path(env) if env else None


# ------------------------------------------------------------------ restricted unpickling
class _RestrictedUnpickler(pickle.Unpickler):
    """Loads only what the CIFAR-10 batches hold: builtins containers and numpy arrays."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR-10 batch file")


def read_cifar_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """(x (n, 32, 32, 3) uint8, y (n,) int64) from one original-release batch file."""
    with open(path, "rb") as fh:
        try:
            d = _RestrictedUnpickler(fh, encoding="bytes").load()
        except (pickle.UnpicklingError, EOFError, ValueError) as e:
            raise InputError(f"{path}: not a CIFAR-10 batch file ({e})") from None
    if not isinstance(d, dict):
        raise InputError(f"{path}: expected a dict with b'data' and b'labels'")
    data = d.get(b"data", d.get("data"))
    labels = d.get(b"labels", d.get("labels"))
    if data is None or labels is None:
        raise InputError(f"{path}: missing field 'data' or 'labels'")
    x = np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x), np.asarray(labels, dtype=np.int64)


def _find_original(root: Path) -> Path | None:
    for cand in (root, root / "cifar-10-batches-py"):
        if (cand / "data_batch_1").exists() and (cand / "test_batch").exists():
            return cand
    return None


def _read_original(root: Path):
    xs, ys = zip(*(read_cifar_batch(root / f"data_batch_{i}") for i in range(1, 6)))
    xt, yt = read_cifar_batch(root / "test_batch")
    return np.concatenate(xs), np.concatenate(ys), xt, yt


def _read_image_folder(split_dir: Path, progress: bool = True):
    from PIL import Image
    from tqdm import tqdm

    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    if len(classes) != 10:
        raise InputError(f"{split_dir}: expected 10 class folders, found {len(classes)}")
    files = [(f, c) for c, name in enumerate(classes)
             for f in sorted((split_dir / name).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    x = np.empty((len(files), 32, 32, 3), dtype=np.uint8)
    y = np.empty(len(files), dtype=np.int64)
    if not files:
        raise InputError(f"{split_dir}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in its class folders")
    for i, (f, c) in enumerate(tqdm(files, desc=f"decoding {split_dir.name}", disable=not progress, mininterval=2)):
        try:
            with Image.open(f) as im:
                arr = np.asarray(im.convert("RGB"))
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            # PIL: "image file is truncated", "cannot identify image file", ...
            raise InputError(f"{f}: cannot decode the image ({' '.join(str(e).split())}); the file is "
                             "truncated or corrupt: copy it again or remove it") from None
        if arr.shape != (32, 32, 3):
            raise InputError(f"{f}: expected a 32x32 image, got {arr.shape[1]}x{arr.shape[0]}")
        x[i], y[i] = arr, c
    return x, y


def detect_layout(root) -> str:
    root = Path(root)
    if _find_original(root) is not None:
        return "original"
    if (root / "train").is_dir() and (root / "test").is_dir():
        return "image-folder"
    raise InputError(
        f"{root}: no CIFAR-10 found; expected train/<class>/ and test/<class>/ image folders, "
        "or the original data_batch_1..5 and test_batch files"
    )


def load_cifar10(root, cache_dir=None, progress: bool = True):
    """CIFAR-10 as uint8 arrays, decoded once and cached (see the module docstring)."""
    root = Path(root).resolve()
    layout = detect_layout(root)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = hashlib.sha1(f"{root}|{layout}".encode()).hexdigest()[:12]
    cache = cache_dir / f"cifar10-{layout}-{key}.npz" if cache_dir is not None else None
    if cache is not None and cache.exists():
        with np.load(cache, allow_pickle=False) as f:
            return f["x_train"], f["y_train"], f["x_test"], f["y_test"]
    if layout == "original":
        xtr, ytr, xte, yte = _read_original(_find_original(root))
    else:
        xtr, ytr = _read_image_folder(root / "train", progress)
        xte, yte = _read_image_folder(root / "test", progress)
    if cache is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        atomic_save_npz(cache, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    return xtr, ytr, xte, yte


def split_train_val(y: np.ndarray, n_val: int = 5000, seed: int = 0):
    """Seeded stratified split: (train_idx, val_idx), n_val / n_classes per class in val."""
    y = np.asarray(y)
    if y.size == 0:
        raise InputError("split_train_val: no labels to split (an empty dataset)")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    per_class = n_val // classes.size
    if per_class < 1:
        raise InputError(f"split_train_val: n_val = {n_val} is smaller than the number of classes "
                         f"({classes.size}); expected at least one validation image per class")
    small = counts <= per_class
    if small.any():
        c = classes[np.argmax(small)]
        raise InputError(f"split_train_val: class {c} has {counts[np.argmax(small)]} images, too few to put "
                         f"{per_class} in validation and keep some for training; use a smaller n_val "
                         f"(at most {(int(counts.min()) - 1) * classes.size}) or more data")
    val = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per_class] for c in classes])
    mask = np.ones(y.size, bool)
    mask[val] = False
    return np.flatnonzero(mask), np.sort(val)


def download_cifar10(dest, url: str = CIFAR10_URL, md5: str = CIFAR10_MD5) -> Path:
    """Download and unpack the original release into ``dest`` (for online users).

    Checks the archive's MD5 and extracts only regular files under
    ``cifar-10-batches-py/``. Returns the folder holding the batches.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(url) as r:  # noqa: S310 (https or a local file in tests)
        blob = r.read()
    got = hashlib.md5(blob).hexdigest()
    if md5 and got != md5:
        raise InputError(f"{url}: checksum mismatch (md5 {got}, expected {md5}); download again")
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        for m in tar.getmembers():
            parts = Path(m.name).parts
            if not m.isfile() or ".." in parts or Path(m.name).is_absolute() or parts[0] != "cifar-10-batches-py":
                continue
            out = dest / m.name
            out.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(m) as src:
                out.write_bytes(src.read())
    return dest / "cifar-10-batches-py"
