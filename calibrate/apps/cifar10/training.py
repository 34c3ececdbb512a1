"""A training loop a reader can hold in their head (imports torch).

SGD with Nesterov momentum and a one-cycle schedule, random crop (pad 4, reflect) and
horizontal flip, tqdm progress, a checkpoint after every epoch and resume after an
interruption, seeded so that a resumed run equals an uninterrupted one (each epoch's
shuffling, augmentation and dropout are seeded by (seed, epoch)).

How it runs is chosen per machine, not part of the run's configuration: ``device`` and
``precision`` (see :mod:`calibrate.integrations.torch.precision`: float32 unless bf16 is native and
faster; fp16 on CUDA with a ``GradScaler``), ``channels_last`` and ``compile``
(``torch.compile``), whose measured effect on CPUs is in the README ("Speed on your machine").
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from calibrate.apps.cifar10.images import MEAN, STD, ImageBatches, to_tensor  # noqa: F401 (MEAN, STD re-exported)
from calibrate.apps.cifar10.model import ResNet9
from calibrate.integrations import torch as ctorch
from calibrate.integrations.torch.focal import focal_loss
from calibrate.integrations.torch.losses import label_smoothing_cross_entropy
from calibrate.integrations.torch.mixup import mixup, mixup_cross_entropy


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 512
    lr: float = 0.4  # one-cycle peak
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    focal_gamma: float | str | None = None  # focal loss (a number, or "flsd-53"), Mukhoti et al. 2020
    mixup_alpha: float = 0.0  # mixup with lam ~ Beta(alpha, alpha), Zhang et al. 2018 (0: off)
    augment: bool = True  # random crop + flip
    widths: tuple = (32, 64, 128)
    dropout: float = 0.1
    seed: int = 0

    def __post_init__(self):
        losses = [self.label_smoothing > 0, self.focal_gamma is not None, self.mixup_alpha > 0]
        if sum(losses) > 1:
            raise ValueError("TrainConfig: label_smoothing, focal_gamma and mixup_alpha are alternatives; set one")

    def to_dict(self):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def training_loss(cfg: TrainConfig, logits: torch.Tensor, labels: torch.Tensor, mixed=None) -> torch.Tensor:
    """The batch loss of ``cfg``: cross-entropy (with label smoothing), focal, or mixup's
    cross-entropy against the mixed targets (``mixed``: the :class:`MixedBatch`)."""
    if mixed is not None:
        return mixup_cross_entropy(logits, mixed)
    if cfg.focal_gamma is not None:
        return focal_loss(logits, labels, cfg.focal_gamma)
    return label_smoothing_cross_entropy(logits, labels, cfg.label_smoothing)


def augment_batch(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop with reflect padding and a random horizontal flip, per sample."""
    n, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    out = xp[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]
    flip = torch.rand(n, generator=gen) < 0.5
    out = torch.where(flip[:, None, None, None], out.flip(3), out)
    return out.contiguous(memory_format=torch.channels_last)


def build_model(cfg: TrainConfig, num_classes: int = 10, channels_last: bool = True) -> ResNet9:
    torch.manual_seed(cfg.seed)
    model = ResNet9(cfg.widths, num_classes, cfg.dropout)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def _atomic_torch_save(obj, path: Path):
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


@dataclass
class _Loop:
    """What every training step uses: the model, its (possibly compiled) forward, the
    optimiser, the schedule, the fp16 gradient scaler (None otherwise), device and precision."""

    cfg: TrainConfig
    model: ResNet9
    forward: object
    opt: torch.optim.Optimizer
    sched: object
    scaler: object
    dev: torch.device
    prec: str
    channels_last: bool
    compile: bool


def train(cfg: TrainConfig, x_train: np.ndarray, y_train: np.ndarray, out_dir, progress: bool = True,
          desc: str = "train", device="cpu", precision: str = "fp32", channels_last: bool = True,
          compile: bool = False, bar=None) -> ResNet9:
    """Train (or resume, or reuse) a model; returns it on the CPU in eval mode.

    out_dir holds ``config.json``, ``last.pt`` (after each epoch: model, optimiser,
    schedule, epoch) and ``model.pt`` (final weights). A finished run with the same
    config is reused; a different config in the same folder is an error. device: "cpu",
    "cuda", "auto" or a torch.device; precision: "fp32" | "bf16" | "fp16" (CUDA) | "auto".
    ``bar``: an outer tqdm bar advanced once per step (else a per-epoch bar is shown).
    Each epoch's line in ``log.jsonl`` records the device and precision it ran in.
    """
    dev = ctorch.resolve_device(device)
    prec = ctorch.resolve_precision(precision, dev)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    last_path, final_path = out / "last.pt", out / "model.pt"
    _check_config(out / "config.json", cfg, y_train)
    model = build_model(cfg, int(y_train.max()) + 1, channels_last)
    if final_path.exists():
        model.load_state_dict(torch.load(final_path, map_location="cpu", weights_only=True))
        return model.eval()

    steps_per_epoch = math.ceil(len(y_train) / cfg.batch_size)
    opt, sched, start = _optimiser(model, cfg, steps_per_epoch, last_path, dev)
    scaler = torch.amp.GradScaler("cuda") if prec == "fp16" else None
    forward = torch.compile(model) if compile else model
    loop = _Loop(cfg, model, forward, opt, sched, scaler, dev, prec, channels_last, compile)
    x_all = to_tensor(x_train, channels_last).to(dev)
    y_all = torch.from_numpy(np.asarray(y_train, dtype=np.int64)).to(dev)
    for epoch in range(start, cfg.epochs):
        entry = _epoch(loop, x_all, y_all, epoch, steps_per_epoch, desc, progress, bar)
        _atomic_torch_save({"model": {k: v.cpu() for k, v in model.state_dict().items()}, "optimizer": opt.state_dict(),
                            "scheduler": sched.state_dict(), "epoch": epoch}, last_path)
        with open(out / "log.jsonl", "a") as fh:
            fh.write(json.dumps(entry) + "\n")
        if progress and bar is None:
            print(f"{desc} epoch {epoch + 1}/{cfg.epochs}: loss {entry['train_loss']:.4f} "
                  f"acc {entry['train_acc']:.4f} ({entry['seconds']:.0f} s)", flush=True)
    model.cpu()
    _atomic_torch_save(model.state_dict(), final_path)
    last_path.unlink(missing_ok=True)
    return model.eval()


def _check_config(cfg_path: Path, cfg: TrainConfig, y_train: np.ndarray) -> None:
    """Write ``config.json``, or check that the one there is of the same run (else ValueError)."""
    meta = {"config": cfg.to_dict(), "n_train": int(len(y_train))}
    if cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        # "bf16": files without a precision field were trained in bf16; other missing fields take their defaults
        old_cfg = {**TrainConfig().to_dict(), **{k: v for k, v in old.get("config", {}).items() if k != "bf16"}}
        if old_cfg != meta["config"] or old.get("n_train") != meta["n_train"]:
            raise ValueError(f"{cfg_path.parent}: holds a run with another configuration; use another folder")
    else:
        cfg_path.write_text(json.dumps(meta, indent=1))


def _optimiser(model: ResNet9, cfg: TrainConfig, steps_per_epoch: int, last_path: Path, dev):
    """(SGD Nesterov, one-cycle schedule, first epoch to run), resumed from ``last_path`` when
    it exists; the model and the optimiser state moved to ``dev``."""
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True,
                          weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch,
                                                pct_start=0.25, anneal_strategy="linear",
                                                div_factor=20.0, final_div_factor=200.0)
    start = 0
    if last_path.exists():
        state = torch.load(last_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start = int(state["epoch"]) + 1
    model.to(dev)
    for st in opt.state.values():
        for key, val in st.items():
            if torch.is_tensor(val):
                st[key] = val.to(dev)
    return opt, sched, start


def _epoch(loop: _Loop, x_all: torch.Tensor, y_all: torch.Tensor, epoch: int, steps_per_epoch: int, desc: str,
           progress: bool, bar) -> dict:
    """One epoch over a seeded permutation of the rows; returns its ``log.jsonl`` entry."""
    from tqdm import tqdm

    cfg = loop.cfg
    t0 = time.time()
    torch.manual_seed(cfg.seed * 10_007 + epoch)  # dropout
    gen = torch.Generator().manual_seed(cfg.seed * 10_007 + epoch)
    perm = torch.randperm(len(y_all), generator=gen).to(loop.dev)
    loop.model.train()
    total, correct, loss_sum = 0, 0, 0.0
    inner = tqdm(range(steps_per_epoch), desc=f"{desc} epoch {epoch + 1}/{cfg.epochs}",
                 disable=not progress or bar is not None, mininterval=5, leave=False)
    for i in inner:
        idx = perm[i * cfg.batch_size:(i + 1) * cfg.batch_size]
        yb = y_all[idx]
        logits, loss = _step(loop, x_all[idx], yb, gen)
        total += len(yb)
        correct += int((logits.argmax(1) == yb).sum())
        loss_sum += loss.item() * len(yb)
        post = {"loss": f"{loss_sum / total:.3f}", "acc": f"{correct / total:.3f}"}
        inner.set_postfix(post, refresh=False)
        if bar is not None:
            bar.set_postfix({"model": desc, "epoch": f"{epoch + 1}/{cfg.epochs}", **post}, refresh=False)
            bar.update(1)
    return {"epoch": epoch + 1, "train_loss": loss_sum / total, "train_acc": correct / total,
            "seconds": time.time() - t0, "device": str(loop.dev), "precision": loop.prec,
            "channels_last": loop.channels_last, "compile": loop.compile}


def _step(loop: _Loop, xb: torch.Tensor, yb: torch.Tensor, gen: torch.Generator):
    """One optimiser step on the batch (xb (b, 3, 32, 32), yb (b,)): augmentation, mixup,
    forward under autocast, loss, backward, step. Returns (logits (b, k), loss)."""
    cfg, dev = loop.cfg, loop.dev
    if cfg.augment:
        xb = augment_batch(xb.cpu(), gen).to(dev) if dev.type != "cpu" else augment_batch(xb, gen)
    mixed = mixup(xb, yb, cfg.mixup_alpha, generator=gen) if cfg.mixup_alpha > 0 else None
    fmt = torch.channels_last if loop.channels_last else torch.contiguous_format
    xb = (mixed.x if mixed is not None else xb).contiguous(memory_format=fmt)
    with ctorch.autocast(dev, loop.prec):
        logits = loop.forward(xb)
    loss = training_loss(cfg, logits, yb, mixed)
    loop.opt.zero_grad(set_to_none=True)
    if loop.scaler is not None:
        loop.scaler.scale(loss).backward()
        loop.scaler.step(loop.opt)
        loop.scaler.update()
    else:
        loss.backward()
        loop.opt.step()
    loop.sched.step()
    return logits, loss


def predict_logits(model, x_uint8: np.ndarray, batch_size: int = 1000, precision: str = "fp32",
                   device=None) -> np.ndarray:
    """(n, k) float32 logits in eval mode (dropout off, batch norm frozen), via
    :func:`calibrate.integrations.torch.predict_logits`."""
    return ctorch.predict_logits(model, ImageBatches(x_uint8, batch_size=batch_size), device=device,
                                 precision=precision)[0]


def time_train_step(cfg: TrainConfig, device="cpu", precision: str = "fp32", channels_last: bool = True,
                    compile: bool = False, steps: int = 3) -> float:
    """Seconds per training step (the median of ``steps`` after one warm-up; augmentation
    included) of a fresh model of ``cfg`` on one random batch: the speed calibration behind
    the experiment's time estimate. The median, not the min: an estimate should not assume
    the quietest moment of a shared machine."""
    dev = ctorch.resolve_device(device)
    prec = ctorch.resolve_precision(precision, dev)
    with torch.random.fork_rng():
        model = build_model(cfg, 10, channels_last).to(dev).train()
        forward = torch.compile(model) if compile else model
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=cfg.momentum, nesterov=True)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        x = torch.randn(cfg.batch_size, 3, 32, 32)
        y = torch.randint(0, 10, (cfg.batch_size,), device=dev)
        gen = torch.Generator().manual_seed(0)
        times = []
        for i in range(steps + 1):
            t0 = time.perf_counter()
            xb = (augment_batch(x, gen) if cfg.augment else x).to(dev).contiguous(memory_format=fmt)
            mixed = mixup(xb, y, cfg.mixup_alpha, generator=gen) if cfg.mixup_alpha > 0 else None
            with ctorch.autocast(dev, prec):
                loss = training_loss(cfg, forward(mixed.x if mixed is not None else xb), y, mixed)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            if i > 0:
                times.append(time.perf_counter() - t0)
    return float(np.median(times))
