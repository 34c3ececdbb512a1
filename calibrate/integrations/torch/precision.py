"""Device and numeric precision, chosen for the machine rather than assumed (imports torch).

``resolve_device("auto")`` is CUDA where available, else the CPU. ``resolve_precision("auto",
device)`` is bf16 only where the hardware runs it natively *and* it is measured faster,
float32 everywhere else:

- CPU: bf16 is native with AMX (``amx_bf16``) or AVX-512-BF16 (``avx512_bf16``); both are
  read from torch (``torch.cpu._is_amx_tile_supported`` / ``_is_avx512_bf16_supported``)
  and from the ``/proc/cpuinfo`` flags. ``torch.backends.cpu.get_cpu_capability()`` only
  says "AVX2" / "AVX512" (never AMX), so it is recorded but not used for the choice. On a
  CPU without them (AVX2 laptops and servers, Apple silicon) bf16 is emulated: a ResNet-9
  training step was 10-13x slower in bf16 than in float32 on an AVX2 EPYC. Where bf16 is
  native, ``auto`` also times a small conv + matmul workload in both precisions (about 0.1 s,
  once per process) and keeps bf16 only if it is at least 10 % faster: an EPYC with
  AVX-512-BF16 ran a ResNet-9 step 1.3x faster in bf16, but that is a property of the
  machine, not of the flag.
- CUDA: bf16 where ``torch.cuda.is_bf16_supported()`` (Ampere and later), else float32.
  fp16 is never chosen by ``auto``; asked for explicitly it is CUDA only (train with a
  ``GradScaler``, as :func:`calibrate.apps.cifar10.training.train` does).

``autocast(device, precision)`` is the matching context manager (``nullcontext`` for fp32).
"""

from __future__ import annotations

import contextlib
import os
import time

import torch

from calibrate._core.machine import cpu_flags, cpu_model
from calibrate._core.validation import InputError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_MEASURED: dict = {}


def resolve_device(device="auto") -> torch.device:
    """"auto" -> cuda if available else cpu; "cpu", "cuda", "cuda:1", "mps" or a torch.device."""
    if isinstance(device, torch.device):
        dev = device
    elif device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    elif isinstance(device, str):
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise InputError(f"device: expected auto, cpu, cuda or cuda:N, got {device!r}") from None
    else:
        raise InputError(f"device: expected a string or torch.device, got {type(device).__name__}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device}: no CUDA device is available here; use cpu (or auto)")
    if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise InputError(f"device {device}: MPS is not available here; use cpu (or auto)")
    return dev


def _cpuinfo_flags() -> set:
    return cpu_flags()


def _torch_flag(name) -> bool:
    fn = getattr(torch.cpu, name, None)
    try:
        return bool(fn()) if fn is not None else False
    except Exception:  # noqa: BLE001 (a private helper; absent or failing means "not known")
        return False


def cpu_info() -> dict:
    """What decides CPU precision: torch's capability string, native-bf16 flags, threads."""
    flags = _cpuinfo_flags()
    amx = "amx_bf16" in flags or _torch_flag("_is_amx_tile_supported")
    avx512_bf16 = "avx512_bf16" in flags or _torch_flag("_is_avx512_bf16_supported")
    return {
        "cpu": cpu_model(),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "amx_bf16": bool(amx),
        "avx512_bf16": bool(avx512_bf16),
        "native_bf16": bool(amx or avx512_bf16),
        "threads": torch.get_num_threads(),
        "cores": os.cpu_count(),
    }


def _time(fn, repeats=3) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure_bf16_speedup(device="cpu") -> float:
    """fp32 time / bf16 time of a small conv + matmul workload (min of 3; cached per device).

    About 0.1 s where bf16 is native; :func:`resolve_precision` only calls it there.
    """
    dev = resolve_device(device)
    key = str(dev)
    if key not in _MEASURED:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(64, 32, 16, 16, generator=g).to(dev)
        w = torch.randn(64, 32, 3, 3, generator=g).to(dev)
        a = torch.randn(512, 512, generator=g).to(dev)

        def work(dtype):
            def run():
                with torch.no_grad(), torch.autocast(dev.type, dtype=dtype, enabled=dtype != torch.float32):
                    torch.nn.functional.conv2d(x, w, padding=1).sum()
                    (a @ a).sum()
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
            return run

        _MEASURED[key] = _time(work(torch.float32)) / _time(work(torch.bfloat16))
    return _MEASURED[key]


def choose_precision(precision="auto", device="cpu", measure: bool = True) -> tuple[str, str]:
    """(precision, reason): the resolved "fp32" | "bf16" | "fp16" and why (for reports)."""
    if precision not in PRECISIONS:
        raise InputError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    dev = resolve_device(device)
    if precision == "fp16" and dev.type != "cuda":
        raise InputError(f"precision fp16: only on CUDA (got device {dev}); use fp32 or bf16")
    if precision != "auto":
        return precision, "asked for"
    if dev.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", "CUDA device supports bf16"
        return "fp32", "CUDA device without bf16 support"
    if dev.type != "cpu":
        return "fp32", f"{dev.type}: float32 by default"
    info = cpu_info()
    if not info["native_bf16"]:
        return "fp32", f"CPU ({info['capability']}) has no native bf16 (no AMX, no AVX-512-BF16): bf16 would be emulated"
    which = "AMX" if info["amx_bf16"] else "AVX-512-BF16"
    if not measure:
        return "bf16", f"CPU has {which} (not measured)"
    speedup = measure_bf16_speedup(dev)
    if speedup >= 1.1:
        return "bf16", f"CPU has {which}; bf16 measured {speedup:.2f}x faster than fp32"
    return "fp32", f"CPU has {which} but bf16 measured only {speedup:.2f}x the speed of fp32"


def resolve_precision(precision="auto", device="cpu", measure: bool = True) -> str:
    """"auto" | "fp32" | "bf16" | "fp16" -> the precision to run in (see the module docstring)."""
    return choose_precision(precision, device, measure)[0]


def autocast(device, precision: str):
    """A context manager running the enclosed forward pass in ``precision`` on ``device``.

    "fp32" -> no autocast at all; "bf16" / "fp16" -> ``torch.autocast`` with that dtype.
    """
    dev = resolve_device(device) if not isinstance(device, torch.device) else device
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision not in _DTYPES:
        raise InputError(f"precision: expected fp32, bf16 or fp16 (resolve 'auto' first), got {precision!r}")
    if precision == "fp16" and dev.type != "cuda":
        raise InputError(f"precision fp16: only on CUDA (got device {dev})")
    return torch.autocast(dev.type, dtype=_DTYPES[precision])
