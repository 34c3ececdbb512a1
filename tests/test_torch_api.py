"""calibrate.integrations.torch on models of other kinds: a tabular MLP (BatchNorm + dropout, float64 data),
a 1-D conv over sequences, a Hugging Face style model fed dict batches; DataLoaders; devices."""

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from calibrate import TemperatureScaling  # noqa: E402
from calibrate._core.validation import InputError  # noqa: E402
from calibrate.integrations.torch import (  # noqa: E402
    CalibratedModel,
    ensemble_logits,
    mc_dropout_logits,
    model_device,
    predict_logits,
)


def mlp(seed=0, p=0.3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(p), nn.Linear(16, 3))


def tabular(n=70, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))  # float64, as tabular data usually is
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1)
    return torch.from_numpy(x), torch.from_numpy(y)


class Conv1dNet(nn.Module):
    """(n, channels, length) sequences -> (n, 4) logits."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv1d(2, 8, 5, padding=2)
        self.drop = nn.Dropout1d(0.25)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        return self.head(self.drop(torch.relu(self.conv(x))).mean(-1))


class Out:  # what a Hugging Face model returns: an object with .logits
    def __init__(self, logits):
        self.logits = logits


class TextModel(nn.Module):
    """input_ids (n, L) int64 + attention_mask (n, L) -> Out(logits (n, 2))."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.emb = nn.Embedding(50, 8)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(8, 2)

    def forward(self, input_ids, attention_mask):
        m = attention_mask.unsqueeze(-1).float()
        h = (self.emb(input_ids) * m).sum(1) / m.sum(1)
        return Out(self.head(self.drop(h)))


def reference_logits(model, x):
    """The brute-force reference: the whole input in one eval-mode forward."""
    model.eval()
    with torch.no_grad():
        return model(x).float().numpy()


# ------------------------------------------------------------------ predict_logits
def test_mlp_on_float64_tabular_data_through_a_dataloader():
    x, y = tabular()
    model = mlp()
    z, labels = predict_logits(model, DataLoader(TensorDataset(x, y), batch_size=16))
    assert z.shape == (70, 3) and z.dtype == np.float32
    np.testing.assert_array_equal(labels, y.numpy())
    np.testing.assert_allclose(z, reference_logits(model, x.float()), rtol=1e-5, atol=1e-6)


def test_conv1d_on_sequences_with_extra_batch_items_and_no_labels():
    model = Conv1dNet()
    x = torch.randn(33, 2, 40, generator=torch.Generator().manual_seed(0))
    ref = reference_logits(model, x)
    z, labels = predict_logits(model, [x[:10], x[10:20], x[20:]])  # bare tensors: no labels
    assert labels is None
    np.testing.assert_allclose(z, ref, rtol=1e-5, atol=1e-6)
    triples = DataLoader(TensorDataset(x, torch.arange(33), torch.zeros(33)), batch_size=8)  # (x, y, extra)
    z2, labels2 = predict_logits(model, triples)
    np.testing.assert_allclose(z2, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(labels2, np.arange(33))


def text_batches(n=24, bs=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 50, (n, 7), generator=g)
    mask = (torch.rand(n, 7, generator=g) > 0.2).long()
    mask[:, 0] = 1
    y = torch.randint(0, 2, (n,), generator=g)
    return [{"input_ids": ids[i:i + bs], "attention_mask": mask[i:i + bs], "labels": y[i:i + bs]}
            for i in range(0, n, bs)], ids, mask, y


def test_hf_style_model_with_dict_batches_and_labels_key():
    model = TextModel()
    batches, ids, mask, y = text_batches()
    z, labels = predict_logits(model, batches, labels_key="labels")
    model.eval()
    with torch.no_grad():
        ref = model(ids, mask).logits.numpy()
    np.testing.assert_allclose(z, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(labels, y.numpy())
    with pytest.raises(InputError, match="under key 'label'"):
        predict_logits(model, batches, labels_key="label")


def test_dict_output_with_logits_key_is_accepted_and_other_outputs_refused():
    class DictOut(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 2)

        def forward(self, x):
            return {"logits": self.lin(x), "hidden": x}

    x = torch.randn(5, 3)
    m = DictOut()
    np.testing.assert_allclose(predict_logits(m, [x])[0], m.lin(x).detach().numpy(), rtol=1e-6)
    with pytest.raises(InputError, match=r"\(n, k\) logits"):
        predict_logits(nn.Identity(), [torch.randn(4)])
    with pytest.raises(InputError, match="no"):
        predict_logits(mlp(), [])


def test_predict_restores_training_mode_and_uses_eval_mode():
    x, y = tabular()
    model = mlp(p=0.9).train()
    z1, _ = predict_logits(model, [(x, y)])
    z2, _ = predict_logits(model, [(x, y)])
    np.testing.assert_array_equal(z1, z2)  # eval mode: dropout off, deterministic
    assert all(m.training for m in model.modules())


def test_device_none_is_the_models_device_cpu():
    model = mlp()
    assert model_device(model) == torch.device("cpu")
    assert model_device(nn.ReLU()) == torch.device("cpu")  # no parameters, no buffers
    x, y = tabular(8)
    z, _ = predict_logits(model, [(x, y)], device=None)
    z_cpu, _ = predict_logits(model, [(x, y)], device="cpu")
    np.testing.assert_array_equal(z, z_cpu)


def test_bf16_only_when_asked():
    x, y = tabular()
    model = mlp()
    z32, _ = predict_logits(model, [(x.float(), y)])
    np.testing.assert_allclose(z32, reference_logits(model, x.float()), rtol=1e-5, atol=1e-6)
    zb, _ = predict_logits(model, [(x.float(), y)], precision="bf16")
    assert zb.dtype == np.float32
    assert not np.array_equal(zb, z32)  # autocast did run
    np.testing.assert_allclose(zb, z32, atol=0.1)


# ------------------------------------------------------------------ MC dropout
def test_mc_dropout_keeps_batch_norm_frozen_and_restores_modes():
    x, y = tabular()
    model = mlp(p=0.5)
    model.train()
    model[1].eval()  # a mixed state the user had: it must come back exactly
    stats = {k: v.clone() for k, v in model[1].state_dict().items()}
    modes = [m.training for m in model.modules()]
    s, labels = mc_dropout_logits(model, DataLoader(TensorDataset(x, y), batch_size=32), n_samples=7, seed=0)
    assert s.shape == (7, 70, 3) and s.dtype == np.float32
    np.testing.assert_array_equal(labels, y.numpy())
    for k, v in model[1].state_dict().items():
        torch.testing.assert_close(v, stats[k], rtol=0, atol=0)  # running stats untouched
    assert [m.training for m in model.modules()] == modes
    assert s.std(axis=0).mean() > 0  # dropout was active


def test_mc_dropout_only_dropout_is_stochastic():
    """Reference: the same model with dropout p = 0 gives the eval-mode logits in every pass
    (so BatchNorm used its running statistics, not the batch's)."""
    x, y = tabular()
    model = mlp(p=0.0)
    with torch.no_grad():  # non-trivial running statistics
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
    s, _ = mc_dropout_logits(model, [(x[:30], y[:30]), (x[30:], y[30:])], n_samples=3)
    ref = reference_logits(model, x.float())
    for k in range(3):
        np.testing.assert_allclose(s[k], ref, rtol=1e-5, atol=1e-6)


def test_mc_dropout_samples_follow_the_dropout_masks():
    """Brute force: one linear layer after dropout; each sample equals W (m * x / (1 - p)) for a
    Bernoulli mask m, so (sample - b) / W reconstructs x scaled by 0 or 1 / (1 - p)."""
    model = nn.Sequential(nn.Dropout(0.5), nn.Linear(1, 1, bias=False))
    with torch.no_grad():
        model[1].weight.fill_(1.0)
    x = torch.ones(200, 1)
    s, _ = mc_dropout_logits(_Pad(model), [x], n_samples=4, seed=3)
    vals = np.unique(s[..., 0])
    np.testing.assert_allclose(vals, [0.0, 2.0])
    assert 0.3 < np.mean(s[..., 0] == 0) < 0.7


class _Pad(nn.Module):
    """(n, 1) -> (n, 2) logits [f(x), 0]."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        z = self.inner(x)
        return torch.cat([z, torch.zeros_like(z)], 1)


def test_mc_dropout_is_seeded_and_leaves_the_global_rng_alone():
    x, y = tabular()
    model = mlp(p=0.5)
    loader = DataLoader(TensorDataset(x, y), batch_size=20)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, _ = mc_dropout_logits(model, loader, n_samples=5, seed=11)
    assert torch.equal(torch.get_rng_state(), before)
    b, _ = mc_dropout_logits(model, loader, n_samples=5, seed=11)
    c, _ = mc_dropout_logits(model, loader, n_samples=5, seed=12)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_mc_dropout_restores_modes_when_the_model_raises():
    class Boom(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = mlp(p=0.5)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            if self.calls == 3:
                raise RuntimeError("boom")
            return self.net(x)

    x, y = tabular()
    model = Boom().train()
    with pytest.raises(RuntimeError, match="boom"):
        mc_dropout_logits(model, [(x, y)], n_samples=5)
    assert all(m.training for m in model.modules())
    model.eval()
    model.calls = 0
    with pytest.raises(RuntimeError, match="boom"):
        mc_dropout_logits(model, [(x, y)], n_samples=5)
    assert not any(m.training for m in model.modules())


def test_mc_dropout_on_text_and_conv_models():
    batches, *_ = text_batches()
    s, labels = mc_dropout_logits(TextModel(), batches, n_samples=4, labels_key="labels")
    assert s.shape == (4, 24, 2) and labels.shape == (24,)
    x = torch.randn(12, 2, 30)
    s2, _ = mc_dropout_logits(Conv1dNet(), DataLoader(TensorDataset(x), batch_size=5), n_samples=3)
    assert s2.shape == (3, 12, 4) and s2.std(0).mean() > 0  # Dropout1d counts as dropout


def test_mc_dropout_without_dropout_is_refused():
    with pytest.raises(InputError, match="dropout"):
        mc_dropout_logits(nn.Linear(3, 2), [torch.randn(4, 3)])
    with pytest.raises(InputError, match="n_samples"):
        mc_dropout_logits(mlp(), [torch.randn(4, 6)], n_samples=0)


# ------------------------------------------------------------------ ensembles
def test_ensemble_stacks_members_over_a_one_shot_iterable():
    x, y = tabular()
    members = [mlp(seed=s) for s in range(3)]
    one_shot = iter([(x[:40], y[:40]), (x[40:], y[40:])])  # a generator can be read only once
    z, labels = ensemble_logits(members, one_shot)
    assert z.shape == (3, 70, 3)
    np.testing.assert_array_equal(labels, y.numpy())
    for m, zm in zip(members, z):
        np.testing.assert_allclose(zm, reference_logits(m, x.float()), rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="at least one model"):
        ensemble_logits([], [x])


# ------------------------------------------------------------------ CalibratedModel
def test_calibrated_model_temperature_is_exact_and_differentiable():
    x, y = tabular(200)
    model = mlp()
    z, labels = predict_logits(model, DataLoader(TensorDataset(x, y), batch_size=64))
    ts = TemperatureScaling().fit(z, labels)
    cm = CalibratedModel(model, ts).eval()
    xin = x.float().requires_grad_(True)
    out = cm(xin)
    np.testing.assert_allclose(out.detach().numpy(), z / ts.temperature_, rtol=1e-5, atol=1e-6)
    out.sum().backward()
    assert xin.grad is not None and torch.isfinite(xin.grad).all()
    lp = CalibratedModel(model, ts, output="log_probs").eval()(x.float()).detach().numpy()
    np.testing.assert_allclose(lp, ts.predict_log_proba(z), rtol=1e-5, atol=1e-5)


ALL_METHODS = ["temperature", "vector", "matrix", "platt", "isotonic", "histogram", "bbq", "dirichlet", "beta",
               "ets"]
DIFFERENTIABLE = {"temperature", "vector", "matrix", "platt", "dirichlet", "beta", "ets"}


def _logits(k, n, rng):
    y = rng.integers(0, k, n)
    z = rng.normal(size=(n, k)) * 2.0
    z[np.arange(n), y] += 2.5 * rng.random(n)  # informative, over-confident logits
    z[:3] *= 40.0  # a few extreme rows: probabilities at and beyond the fitted maps' ends
    return z, y


def _fitted(method, k, seed=0, n=400):
    """(calibrator fitted on n rows, new logits (n, k), their labels).

    The new rows are another draw: the binning maps' equal-mass edges are fitting
    probabilities, and a lookup on a value equal to an edge depends on its last bit
    (torch's and numpy's exp may round it differently)."""
    from calibrate import get_calibrator

    rng = np.random.default_rng(seed)
    z_fit, y_fit = _logits(k, n, rng)
    z, y = _logits(k, n, rng)
    return get_calibrator(method).fit(z_fit, y_fit), z, y


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("method", ALL_METHODS)
def test_calibrated_model_equals_predict_proba_for_every_method(method, k):
    """nn.Identity over float64 logits: softmax of the output is predict_proba to 1e-10
    (float64 tensor ops and lookups against numpy's: their roundings differ in the last bits)."""
    from calibrate.calibrators.torch_modules import NumpyModule

    cal, z, _ = _fitted(method, k)
    cm = CalibratedModel(nn.Identity(), cal).eval()
    assert not isinstance(cm.calibration, NumpyModule)
    out = cm(torch.from_numpy(z))
    assert out.dtype == torch.float64
    np.testing.assert_allclose(torch.softmax(out, 1).numpy(), cal.predict_proba(z), rtol=0, atol=1e-10)
    lp = CalibratedModel(nn.Identity(), cal, output="log_probs")(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(lp, cal.predict_log_proba(z), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_calibrated_model_after_a_linear_layer_equals_predict_proba(method):
    from calibrate import get_calibrator

    torch.manual_seed(0)
    model = nn.Linear(6, 3).double()
    rng = np.random.default_rng(1)
    x_fit, x = (torch.from_numpy(rng.normal(size=(300, 6)) * 2.0) for _ in range(2))
    with torch.no_grad():
        z_fit, z = model(x_fit).numpy(), model(x).numpy()
    y_fit = np.argmax(z_fit + rng.gumbel(size=z_fit.shape), axis=1)
    cal = get_calibrator(method).fit(z_fit, y_fit)
    with torch.no_grad():
        p = torch.softmax(CalibratedModel(model, cal)(x), 1).numpy()
    np.testing.assert_allclose(p, cal.predict_proba(z), rtol=0, atol=1e-10)


def test_calibrated_model_keeps_the_ensemble_weights():
    cal, z, _ = _fitted("ets", 4, seed=3)
    cal.weights_ = np.array([0.5, 0.2, 0.3])  # a mixture far from temperature scaling alone
    lp = CalibratedModel(nn.Identity(), cal, output="log_probs")(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(lp, cal.predict_log_proba(z), rtol=1e-10, atol=1e-10)
    t_alone = torch.log_softmax(torch.from_numpy(z) / cal.temperature_, 1).numpy()
    assert np.abs(lp - t_alone).max() > 1.0


@pytest.mark.parametrize("method", sorted(DIFFERENTIABLE))
def test_tensor_op_modules_are_differentiable_in_the_logits(method):
    cal, z, _ = _fitted(method, 4)
    zt = torch.from_numpy(z[3:]).requires_grad_(True)
    cal.to_torch()(zt).logsumexp(1).sum().backward()
    assert zt.grad is not None and torch.isfinite(zt.grad).all()


def test_float32_logits_give_the_float64_result_rounded():
    cal, z, _ = _fitted("dirichlet", 4)
    z32 = z.astype(np.float32)
    out = cal.to_torch()(torch.from_numpy(z32))
    assert out.dtype == torch.float32
    np.testing.assert_allclose(torch.log_softmax(out.double(), 1).numpy(), cal.predict_log_proba(z32),
                               rtol=1e-6, atol=1e-6)


def test_isotonic_lookup_equals_np_interp_at_knots_and_beyond():
    from calibrate.calibrators.torch_modules import IsotonicModule

    maps = [{"x": np.array([0.1, 0.25, 0.5, 0.9]), "y": np.array([0.0, 0.2, 0.2, 0.95])},
            {"x": np.array([0.3]), "y": np.array([0.4])}]
    p = np.array([0.0, 0.1, 0.15, 0.25, 0.3, 0.5, 0.7, 0.9, 0.95, 1.0, np.nextafter(0.25, 1), np.nextafter(0.9, 0)])
    mod = IsotonicModule(maps, 1e-6)
    for j, m in enumerate(maps):
        np.testing.assert_array_equal(mod.map_probs(j, torch.from_numpy(p)).numpy(), np.interp(p, m["x"], m["y"]))


def test_binned_lookup_equals_the_binning_rule_on_the_edges():
    from calibrate._core.binning import bin_index, equal_width_edges
    from calibrate.calibrators.torch_modules import BinnedModule

    e1, v1 = equal_width_edges(5), np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    e2, v2 = np.array([0.0, 0.3, 1.0, 1.0]), np.array([0.2, 0.6, 0.99])  # a repeated 1.0 edge: an empty last bin
    w = np.array([0.25, 0.75])
    p = np.concatenate([[0.0, 1.0, 0.3], e1, np.nextafter(e1, 1), np.nextafter(e1, 0).clip(0), [0.55]])
    mod = BinnedModule([([(e1, v1), (e2, v2)], w)], 1e-6)
    ref = w[0] * v1[bin_index(p, e1)] + w[1] * v2[bin_index(p, e2)]
    np.testing.assert_allclose(mod.map_probs(0, torch.from_numpy(p)).numpy(), ref, rtol=1e-15, atol=0)


def test_the_calibrators_layer_does_not_import_the_integrations():
    import calibrate.calibrators.scaling as scaling

    src = Path(scaling.__file__).read_text()
    assert "calibrate.integrations" not in src


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("method", ALL_METHODS)
def test_calibrated_model_on_cuda_equals_predict_proba(method):
    cal, z, _ = _fitted(method, 4)
    cm = CalibratedModel(nn.Identity(), cal).to("cuda")
    out = cm(torch.from_numpy(z).to("cuda"))
    assert out.device.type == "cuda"
    np.testing.assert_allclose(torch.softmax(out, 1).cpu().numpy(), cal.predict_proba(z), rtol=0, atol=1e-10)


def test_calibrated_model_on_hf_outputs_and_bad_arguments():
    batches, ids, mask, y = text_batches()
    model = TextModel()
    z, labels = predict_logits(model, batches, labels_key="labels")
    ts = TemperatureScaling().fit(z, labels)
    cm = CalibratedModel(model, ts).eval()
    np.testing.assert_allclose(cm(input_ids=ids, attention_mask=mask).detach().numpy(), z / ts.temperature_,
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="output"):
        CalibratedModel(model, ts, output="probs")
    with pytest.raises(Exception, match="(?i)fit"):
        CalibratedModel(model, TemperatureScaling())
