"""Focal loss against its closed form and Lin et al.'s binary formula, gradients by gradcheck;
mixup against its definition, seeded by a torch.Generator."""

import numpy as np
import pytest
from scipy import stats

torch = pytest.importorskip("torch")
F = torch.nn.functional

from calibrate.integrations.torch import FocalLoss, Mixup, focal_loss, mixup, mixup_cross_entropy  # noqa: E402


def random_logits(n=64, k=5, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, k, generator=g, dtype=torch.float64) * scale
    y = torch.randint(0, k, (n,), generator=g)
    return z, y


def closed_form(z, y, gamma):
    """-(1 - p_y)^gamma log p_y from explicit probabilities (numpy, float64)."""
    z = z.detach().numpy().astype(np.float64)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    py = p[np.arange(len(y)), y.numpy()]
    g = np.where(py < 0.2, 5.0, 3.0) if gamma == "flsd-53" else gamma
    return -((1 - py) ** g) * np.log(py)


@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0, 3.0, 5.0, "flsd-53"])
def test_focal_loss_equals_the_closed_form(gamma):
    z, y = random_logits()
    per = focal_loss(z, y, gamma, reduction="none")
    np.testing.assert_allclose(per.numpy(), closed_form(z, y, gamma), rtol=1e-12, atol=1e-15)
    assert focal_loss(z, y, gamma).item() == pytest.approx(closed_form(z, y, gamma).mean(), rel=1e-12)
    assert focal_loss(z, y, gamma, reduction="sum").item() == pytest.approx(closed_form(z, y, gamma).sum(), rel=1e-12)


def test_gamma_zero_is_the_cross_entropy():
    z, y = random_logits(seed=1)
    assert focal_loss(z, y, 0.0).item() == pytest.approx(F.cross_entropy(z, y).item(), rel=1e-14)


@pytest.mark.parametrize("gamma", [0.0, 2.0, 3.0])
def test_two_classes_equal_lin_et_al_binary_focal_loss(gamma):
    """Lin et al. 2017 (alpha = None): p = sigmoid(x), p_t = p if y = 1 else 1 - p,
    FL = -(1 - p_t)^gamma log p_t, with x = z_1 - z_0."""
    z, y = random_logits(n=100, k=2, seed=2)
    x = z[:, 1] - z[:, 0]
    p = torch.sigmoid(x)
    pt = torch.where(y == 1, p, 1 - p)
    ref = -((1 - pt) ** gamma) * torch.log(pt)
    np.testing.assert_allclose(focal_loss(z, y, gamma, reduction="none").numpy(), ref.numpy(), rtol=1e-10)


def test_flsd_53_picks_gamma_by_the_true_class_probability():
    # p_y = 0.1 (< 0.2: gamma 5) and p_y = 0.5 (gamma 3), hand-built
    z = torch.tensor([[np.log(0.1), np.log(0.9)], [0.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 0])
    out = focal_loss(z, y, "flsd-53", reduction="none").numpy()
    np.testing.assert_allclose(out, [-(0.9**5) * np.log(0.1), -(0.5**3) * np.log(0.5)], rtol=1e-12)


@pytest.mark.parametrize("gamma", [0.0, 2.0, 3.0, "flsd-53"])
def test_gradients_pass_gradcheck_in_float64(gamma):
    z, y = random_logits(n=12, k=4, seed=3, scale=1.5)
    if gamma == "flsd-53":  # keep p_y away from the threshold 0.2 (gamma jumps there)
        p = torch.softmax(z, 1)[torch.arange(12), y]
        keep = (p - 0.2).abs() > 0.02
        z, y = z[keep], y[keep]
    z.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: focal_loss(t, y, gamma, reduction="none"), (z,), eps=1e-6, atol=1e-8)


def test_confident_rows_give_zero_loss_and_finite_gradients():
    z = torch.tensor([[1e4, 0.0, 0.0], [0.0, 50.0, 0.0]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1])
    for gamma in (0.0, 2.0, "flsd-53"):
        loss = focal_loss(z, y, gamma)
        (g,) = torch.autograd.grad(loss, z)
        assert torch.isfinite(loss) and torch.all(torch.isfinite(g))
        assert loss.item() == pytest.approx(0.0, abs=1e-20)


def test_half_precision_logits_are_computed_in_float32():
    z, y = random_logits(seed=4)
    out = focal_loss(z.to(torch.bfloat16), y, 2.0)
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(focal_loss(z.to(torch.bfloat16).double(), y, 2.0).item(), rel=1e-5)


def test_module_and_bad_arguments():
    z, y = random_logits(seed=5)
    assert FocalLoss(2.0)(z, y).item() == focal_loss(z, y, 2.0).item()
    with pytest.raises(ValueError, match="gamma"):
        focal_loss(z, y, -1.0)
    with pytest.raises(ValueError, match="gamma"):
        focal_loss(z, y, "flsd-99")
    with pytest.raises(ValueError, match="logits"):
        focal_loss(z[0], y)
    with pytest.raises(TypeError, match="labels"):
        focal_loss(z, y.double())


# ----------------------------------------------------------------------------- mixup
@pytest.mark.parametrize("shape", [(16, 7), (16, 3, 4, 4), (16,)])
def test_mixup_is_the_convex_combination_with_a_permutation(shape):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (16,), generator=g)
    b = mixup(x, y, alpha=0.4, generator=torch.Generator().manual_seed(1))
    assert 0.0 <= b.lam <= 1.0
    assert sorted(b.perm.tolist()) == list(range(16))
    torch.testing.assert_close(b.x, b.lam * x + (1 - b.lam) * x[b.perm], rtol=1e-14, atol=1e-14)
    assert torch.equal(b.y_a, y) and torch.equal(b.y_b, y[b.perm])
    t = b.soft_targets(5)
    torch.testing.assert_close(t.sum(1), torch.ones(16, dtype=t.dtype))
    assert x.equal(torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64))  # x untouched


def test_mixup_is_reproducible_with_a_seeded_generator():
    x = torch.randn(32, 3)
    y = torch.randint(0, 4, (32,))
    a = Mixup(1.0, torch.Generator().manual_seed(7))
    b = Mixup(1.0, torch.Generator().manual_seed(7))
    for _ in range(3):
        ba, bb = a(x, y), b(x, y)
        assert ba.lam == bb.lam and torch.equal(ba.perm, bb.perm) and torch.equal(ba.x, bb.x)
    assert mixup(x, y, 1.0, torch.Generator().manual_seed(8)).lam != mixup(x, y, 1.0, torch.Generator().manual_seed(7)).lam


@pytest.mark.parametrize("alpha", [0.2, 1.0, 4.0])
def test_lambda_follows_beta_alpha_alpha(alpha):
    g = torch.Generator().manual_seed(3)
    x, y = torch.zeros(2, 1), torch.zeros(2, dtype=torch.long)
    lams = [mixup(x, y, alpha, g).lam for _ in range(2000)]
    assert stats.kstest(lams, stats.beta(alpha, alpha).cdf).pvalue > 0.01


def test_alpha_zero_does_not_mix():
    x = torch.randn(8, 2)
    y = torch.arange(8)
    b = mixup(x, y, alpha=0.0, generator=torch.Generator().manual_seed(0))
    assert b.lam == 1.0 and torch.equal(b.x, x)


def test_mixup_loss_is_the_cross_entropy_against_the_soft_targets():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(20, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 6, (20,), generator=g)
    b = mixup(x, y, alpha=1.0, generator=g)
    logits = torch.randn(20, 6, generator=g, dtype=torch.float64)
    ref = F.cross_entropy(logits, b.soft_targets(6))
    assert mixup_cross_entropy(logits, b).item() == pytest.approx(ref.item(), rel=1e-12)


def test_mixup_rejects_integer_inputs_and_mismatched_labels():
    with pytest.raises(TypeError, match="embeddings"):
        mixup(torch.arange(8), torch.arange(8))
    with pytest.raises(ValueError, match="y"):
        mixup(torch.randn(8, 2), torch.arange(7))
