"""Time one ResNet-9 training step (forward + backward + SGD step) per precision and layout.

    nice python -m experiments.hardware --widths 16,32,64 --precision fp32,bf16 \
        --channels-last 0,1 --compile 0,1 --repeats 3

Prints one line per configuration: the minimum over ``--repeats`` timed steps of the wall
time and of the process CPU time (after a warm-up step, which for torch.compile includes the
compilation, reported separately), with the CPU, torch's capability string, the native-bf16
flags and the thread count. The min is used because the machine may be shared; on a shared
machine, ``--threads 1`` and the CPU time are the steadier measure of the work per step. Used to decide what ``--precision auto``, channels_last
and torch.compile do in ``calibrate experiment`` (see README, "Speed on your machine").
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from calibrate.apps.cifar10.model import ResNet9
from calibrate.integrations.torch.precision import autocast, cpu_info


def step_time(widths, precision="fp32", channels_last=True, compile=False, batch=512, repeats=3,
              warmup=1, device="cpu") -> dict:
    torch.manual_seed(0)
    dev = torch.device(device)
    model = ResNet9(widths, 10, 0.1).to(dev)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.randn(batch, 3, 32, 32, device=dev).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device=dev)
    fwd = torch.compile(model) if compile else model
    model.train()

    def step():
        with autocast(dev, precision):
            logits = fwd(x)
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()

    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    first = time.perf_counter() - t0
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"widths": list(widths), "precision": precision, "channels_last": channels_last, "compile": compile,
            "batch": batch, "threads": torch.get_num_threads(), "step_s_min": round(min(times), 4),
            "step_s_all": [round(t, 4) for t in times], "cpu_s_min": round(min(cpu), 4), "warmup_s": round(first, 2)}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--widths", default="16,32,64")
    ap.add_argument("--precision", default="fp32,bf16")
    ap.add_argument("--channels-last", default="1")
    ap.add_argument("--compile", default="0")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    widths = tuple(int(w) for w in a.widths.split(","))
    print(json.dumps({"machine": cpu_info(), "torch": torch.__version__}), flush=True)
    for prec in a.precision.split(","):
        for cl in a.channels_last.split(","):
            for comp in a.compile.split(","):
                r = step_time(widths, prec, bool(int(cl)), bool(int(comp)), a.batch, a.repeats, device=a.device)
                print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
