"""Device and precision choice (calibrate.integrations.torch.precision); CUDA is mocked, so these run on any CPU."""

import contextlib

import pytest

torch = pytest.importorskip("torch")

from calibrate._core.validation import InputError  # noqa: E402
from calibrate.integrations.torch import precision as P  # noqa: E402


@pytest.fixture
def cpu(monkeypatch):
    """Pretend to be a CPU with the given native-bf16 flags and bf16 speed-up."""

    def set_cpu(amx=False, avx512_bf16=False, speedup=1.0, capability="AVX2"):
        flags = {"avx2"} | ({"amx_bf16", "amx_tile"} if amx else set()) | ({"avx512_bf16"} if avx512_bf16 else set())
        monkeypatch.setattr(P, "_cpuinfo_flags", lambda: flags)
        monkeypatch.setattr(P, "_torch_flag", lambda name: False)
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
        calls = []

        def measure(device="cpu"):
            calls.append(device)
            return speedup

        monkeypatch.setattr(P, "measure_bf16_speedup", measure)
        return calls

    return set_cpu


def test_auto_is_fp32_on_an_avx2_cpu_without_measuring(cpu):
    calls = cpu()
    prec, why = P.choose_precision("auto", "cpu")
    assert prec == "fp32" and "no native bf16" in why and "AVX2" in why
    assert calls == []  # nothing timed where bf16 would be emulated


@pytest.mark.parametrize("flags", [{"amx": True}, {"avx512_bf16": True}])
def test_auto_is_bf16_where_native_and_measured_faster(cpu, flags):
    cpu(**flags, speedup=1.3, capability="AVX512")
    prec, why = P.choose_precision("auto", "cpu")
    assert prec == "bf16" and "1.30x" in why


def test_auto_stays_fp32_where_native_but_not_faster(cpu):
    cpu(avx512_bf16=True, speedup=1.02, capability="AVX512")
    assert P.resolve_precision("auto", "cpu") == "fp32"


def test_explicit_precisions_and_fp16_only_on_cuda(cpu):
    cpu()
    assert P.resolve_precision("fp32", "cpu") == "fp32"
    assert P.resolve_precision("bf16", "cpu") == "bf16"  # asked for: honoured, even if emulated
    with pytest.raises(InputError, match="fp16: only on CUDA"):
        P.resolve_precision("fp16", "cpu")
    with pytest.raises(InputError, match="precision"):
        P.resolve_precision("fp8", "cpu")


def test_cpu_info_reads_the_flags(cpu):
    cpu(amx=True, capability="AVX512")
    info = P.cpu_info()
    assert info["capability"] == "AVX512" and info["amx_bf16"] and info["native_bf16"]
    assert info["threads"] == torch.get_num_threads()


def test_real_cpu_info_is_consistent():
    info = P.cpu_info()
    assert info["capability"] == torch.backends.cpu.get_cpu_capability()
    assert info["native_bf16"] == (info["amx_bf16"] or info["avx512_bf16"])
    if not info["native_bf16"]:
        assert P.resolve_precision("auto", "cpu") == "fp32"


@pytest.fixture
def fake_cuda(monkeypatch):
    def set_cuda(available=True, bf16=True):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)

    return set_cuda


def test_resolve_device(fake_cuda):
    fake_cuda(available=False)
    assert P.resolve_device("auto") == torch.device("cpu")
    assert P.resolve_device(None) == torch.device("cpu")
    assert P.resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(InputError, match="no CUDA device"):
        P.resolve_device("cuda")
    with pytest.raises(InputError, match="device"):
        P.resolve_device("tpu9")
    fake_cuda(available=True)
    assert P.resolve_device("auto") == torch.device("cuda")
    assert P.resolve_device("cuda:1") == torch.device("cuda", 1)


def test_cuda_precision_choice(fake_cuda):
    fake_cuda(bf16=True)
    assert P.choose_precision("auto", "cuda")[0] == "bf16"
    assert P.choose_precision("fp16", "cuda")[0] == "fp16"
    fake_cuda(bf16=False)
    assert P.choose_precision("auto", "cuda")[0] == "fp32"


def test_autocast_contexts():
    assert isinstance(P.autocast("cpu", "fp32"), contextlib.nullcontext)
    with P.autocast("cpu", "bf16"):
        out = torch.ones(4, 4) @ torch.ones(4, 4)
    assert out.dtype == torch.bfloat16
    with pytest.raises(InputError, match="fp16"):
        P.autocast("cpu", "fp16")
    with pytest.raises(InputError, match="resolve 'auto'"):
        P.autocast("cpu", "auto")


def test_measured_speedup_is_a_positive_ratio():
    P._MEASURED.pop("cpu", None)
    r = P.measure_bf16_speedup("cpu")
    assert r > 0 and P.measure_bf16_speedup("cpu") == r  # cached: measured once per process


def test_training_step_takes_the_device_and_precision(monkeypatch, fake_cuda):
    """The training loop asks for CUDA through resolve_device: with CUDA unavailable a cuda
    request is a clean error, not a crash deep inside torch."""
    import numpy as np

    from calibrate.apps.cifar10.training import TrainConfig, train

    fake_cuda(available=False)
    x = np.zeros((8, 32, 32, 3), np.uint8)
    y = np.arange(8) % 2
    with pytest.raises(InputError, match="no CUDA"):
        train(TrainConfig(epochs=1, batch_size=4, widths=(4, 4, 4)), x, y, "/nonexistent-never-created",
              progress=False, device="cuda")
    with pytest.raises(InputError, match="fp16"):
        train(TrainConfig(epochs=1, batch_size=4, widths=(4, 4, 4)), x, y, "/nonexistent-never-created",
              progress=False, device="cpu", precision="fp16")
