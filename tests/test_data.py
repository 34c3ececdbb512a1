"""CIFAR-10 loading: both layouts, the restricted unpickler, caching, the split, downloading."""

import hashlib
import io
import os
import pickle
import tarfile

import numpy as np
import pytest
from PIL import Image

from calibrate._core.validation import InputError
from calibrate.apps.cifar10 import data


def _batch(n, seed):
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"x", b"labels": rng.integers(0, 10, n).tolist(),
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"a.png"] * n}


def _write_original(root, n=20):
    root.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        with open(root / f"data_batch_{i}", "wb") as fh:
            pickle.dump(_batch(n, i), fh, protocol=2)
    with open(root / "test_batch", "wb") as fh:
        pickle.dump(_batch(n, 9), fh, protocol=2)


def test_reads_original_batches(tmp_path):
    _write_original(tmp_path / "cifar-10-batches-py")
    xtr, ytr, xte, yte = data.load_cifar10(tmp_path, cache_dir=tmp_path / "cache", progress=False)
    assert xtr.shape == (100, 32, 32, 3) and xtr.dtype == np.uint8 and xte.shape == (20, 32, 32, 3)
    b = _batch(20, 1)
    # channel-major rows -> HWC images: pixel (0, 0) of image 0 is data[0, 0], data[0, 1024], data[0, 2048]
    assert list(xtr[0, 0, 0]) == [b[b"data"][0, 0], b[b"data"][0, 1024], b[b"data"][0, 2048]]
    assert list(ytr[:20]) == b[b"labels"]


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(tmp_path / "data_batch_1", "wb") as fh:
        pickle.dump({b"data": Evil(), b"labels": []}, fh)
    with pytest.raises(InputError, match="refusing"):
        data.read_cifar_batch(tmp_path / "data_batch_1")
    assert not marker.exists()


def test_reads_image_folders_and_caches(tmp_path):
    root = tmp_path / "imgs"
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 2)):
        for c in data.CLASSES:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / split / c / f"{i:04d}.png")
    xtr, ytr, xte, yte = data.load_cifar10(root, cache_dir=tmp_path / "cache", progress=False)
    assert xtr.shape == (30, 32, 32, 3) and list(np.bincount(ytr)) == [3] * 10
    first = np.asarray(Image.open(root / "train" / "airplane" / "0000.png"))
    np.testing.assert_array_equal(xtr[0], first)
    assert len(list((tmp_path / "cache").iterdir())) == 1
    # the cache is used: removing the images does not matter any more
    for f in (root / "train" / "airplane").iterdir():
        f.unlink()
    np.testing.assert_array_equal(data.load_cifar10(root, cache_dir=tmp_path / "cache", progress=False)[0], xtr)


def test_missing_data_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="no CIFAR-10 found"):
        data.load_cifar10(tmp_path, cache_dir=tmp_path / "c")


def test_split_is_stratified_seeded_and_disjoint():
    y = np.repeat(np.arange(10), 5000)
    tr, va = data.split_train_val(y, 5000, seed=0)
    assert len(tr) == 45000 and len(va) == 5000 and not set(tr) & set(va)
    assert list(np.bincount(y[va])) == [500] * 10
    assert np.array_equal(va, data.split_train_val(y, 5000, seed=0)[1])
    assert not np.array_equal(va, data.split_train_val(y, 5000, seed=1)[1])


def _tarball(tmp_path):
    src = tmp_path / "src" / "cifar-10-batches-py"
    _write_original(src)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src, arcname="cifar-10-batches-py")
    blob = buf.getvalue()
    (tmp_path / "cifar.tar.gz").write_bytes(blob)
    return (tmp_path / "cifar.tar.gz").as_uri(), hashlib.md5(blob).hexdigest()


def test_download_checks_md5_and_unpacks(tmp_path):
    url, md5 = _tarball(tmp_path)
    folder = data.download_cifar10(tmp_path / "dl", url=url, md5=md5)
    assert (folder / "test_batch").exists()
    assert data.load_cifar10(tmp_path / "dl", cache_dir=tmp_path / "cache", progress=False)[0].shape == (100, 32, 32, 3)


def test_download_with_wrong_checksum_is_refused(tmp_path):
    url, _ = _tarball(tmp_path)
    with pytest.raises(InputError, match="checksum"):
        data.download_cifar10(tmp_path / "dl", url=url, md5="0" * 32)


def test_no_cache_unless_asked(tmp_path, monkeypatch):
    """Without cache_dir and $CALIBRATE_CACHE nothing is written (not to ~/.cache either);
    with $CALIBRATE_CACHE the cache goes there."""
    _write_original(tmp_path / "data" / "cifar-10-batches-py")
    monkeypatch.delenv("CALIBRATE_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    data.load_cifar10(tmp_path / "data", progress=False)
    assert not (tmp_path / "home").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    monkeypatch.setenv("CALIBRATE_CACHE", str(tmp_path / "env-cache"))
    data.load_cifar10(tmp_path / "data", progress=False)
    assert len(list((tmp_path / "env-cache").glob("cifar10-original-*.npz"))) == 1
