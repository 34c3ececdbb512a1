"""Training tools (torch): label smoothing loss, augmentation, resume, MC dropout."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from calibrate.apps.cifar10 import sampling  # noqa: E402
from calibrate.apps.cifar10.training import (  # noqa: E402
    TrainConfig,
    augment_batch,
    build_model,
    predict_logits,
    train,
)
from calibrate.integrations.torch.losses import LabelSmoothingLoss, label_smoothing_cross_entropy  # noqa: E402


@pytest.mark.parametrize("eps", [0.0, 0.05, 0.1, 0.3])
def test_label_smoothing_matches_torch(eps):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(64, 10, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, 10, (64,), generator=g)
    ref = torch.nn.functional.cross_entropy(z, y, label_smoothing=eps)
    assert label_smoothing_cross_entropy(z, y, eps).item() == pytest.approx(ref.item(), rel=1e-12)
    assert LabelSmoothingLoss(eps)(z, y).item() == pytest.approx(ref.item(), rel=1e-12)


def test_label_smoothing_gradient_matches_torch():
    z = torch.randn(8, 5, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 5, (8,))
    (g1,) = torch.autograd.grad(label_smoothing_cross_entropy(z, y, 0.1), z)
    (g2,) = torch.autograd.grad(torch.nn.functional.cross_entropy(z, y, label_smoothing=0.1), z)
    torch.testing.assert_close(g1, g2)


def test_augment_is_a_crop_or_flip_of_the_padded_image():
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).reshape(2, 3, 32, 32)
    out = augment_batch(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    # every output pixel value exists in the (reflect-padded) input of the same image and channel
    for i in range(2):
        assert set(out[i, 0].flatten().tolist()) <= set(x[i, 0].flatten().tolist())


def _tiny(n=256, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)  # 16x16: the net pools globally; 4x cheaper
    x[:, :4, :4, 0] = (y * 25)[:, None, None]  # a learnable signal
    return x, y


CFG = TrainConfig(epochs=2, batch_size=64, widths=(8, 16, 16), lr=0.1, seed=0)


def test_resume_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    x, y = _tiny()
    full = train(CFG, x, y, tmp_path / "full", progress=False)
    # interrupt after the first epoch: the save of epoch 2 raises
    import calibrate.apps.cifar10.training as tr

    real_save = tr._atomic_torch_save
    calls = {"n": 0}

    def flaky(obj, path):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        real_save(obj, path)

    monkeypatch.setattr(tr, "_atomic_torch_save", flaky)
    with pytest.raises(KeyboardInterrupt):
        train(CFG, x, y, tmp_path / "cut", progress=False)
    monkeypatch.setattr(tr, "_atomic_torch_save", real_save)
    assert (tmp_path / "cut" / "last.pt").exists() and not (tmp_path / "cut" / "model.pt").exists()
    resumed = train(CFG, x, y, tmp_path / "cut", progress=False)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_finished_run_is_reused_and_other_config_refused(tmp_path):
    x, y = _tiny()
    m1 = train(CFG, x, y, tmp_path / "run", progress=False)
    m2 = train(CFG, x, y, tmp_path / "run", progress=False)
    np.testing.assert_array_equal(predict_logits(m1, x[:10]), predict_logits(m2, x[:10]))
    with pytest.raises(ValueError, match="another configuration"):
        train(TrainConfig(**{**CFG.to_dict(), "widths": (8, 16, 16), "seed": 5}), x, y, tmp_path / "run", progress=False)


def test_logits_are_float32_and_not_bf16_quantised():
    x, _ = _tiny(64)
    z = predict_logits(build_model(CFG), x)
    assert z.dtype == np.float32
    assert len(np.unique(z)) > 0.9 * z.size


def test_mc_dropout_samples_vary_and_keep_batch_norm_frozen():
    x, _ = _tiny(50)
    model = build_model(TrainConfig(widths=(8, 16, 16), dropout=0.5))
    bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)][0]
    model.eval()
    before = bn.running_mean.clone()
    s = sampling.mc_dropout_logits(model, x, n_samples=6, seed=0)
    assert s.shape == (6, 50, 10)
    assert np.std(s, axis=0).mean() > 0
    torch.testing.assert_close(bn.running_mean, before)
    assert not any(m.training for m in model.modules())  # the caller's modes, restored


def test_mc_dropout_head_only_shortcut_matches_full_passes_in_distribution():
    x, _ = _tiny(40)
    model = build_model(TrainConfig(widths=(8, 16, 16), dropout=0.0))
    s = sampling.mc_dropout_logits(model, x, n_samples=3)
    np.testing.assert_allclose(s[0], predict_logits(model, x), rtol=1e-5, atol=1e-5)


def test_mc_dropout_head_only_shortcut_equals_full_passes_with_the_same_masks():
    """With dropout active, the shortcut (features once, S head passes) and S full passes of
    calibrate.integrations.torch.mc_dropout_logits draw the same masks from the same seed when the
    batches coincide, so the samples are equal (a brute-force reference for the shortcut)."""
    from calibrate.apps.cifar10.images import ImageBatches
    from calibrate.integrations.torch import mc_dropout_logits

    x, _ = _tiny(30)
    model = build_model(TrainConfig(widths=(8, 16, 16), dropout=0.5)).eval()
    fast = sampling.mc_dropout_logits(model, x, n_samples=4, seed=5)
    full, _ = mc_dropout_logits(model, ImageBatches(x, batch_size=1000), n_samples=4, seed=5)
    np.testing.assert_allclose(fast, full, rtol=1e-5, atol=1e-5)


def test_ensemble_logits_are_the_members_predictions():
    x, _ = _tiny(20)
    members = [build_model(TrainConfig(widths=(8, 16, 16), seed=s)) for s in range(2)]
    z = sampling.ensemble_logits(members, x, batch_size=7)
    assert z.shape == (2, 20, 10)
    for m, zm in zip(members, z):
        np.testing.assert_allclose(zm, predict_logits(m, x), rtol=1e-5, atol=1e-6)
