"""Fitted calibrators as torch modules (imports torch; imported only by ``to_torch``).

Every module maps logits (..., k) to calibrated logits (..., k): softmax of its output
is the calibrator's ``predict_proba``. Temperature and vector/matrix scaling return the
scaled logits; the others return the calibrated log-probabilities. The arithmetic is in
float64 (the input is cast up, the output cast back to the input's floating dtype), with
the fitted parameters as float64 buffers, so ``module.to(device)`` moves them.

Temperature, vector, matrix, Platt, beta, Dirichlet and ensemble temperature scaling
are tensor ops, differentiable in the logits. Isotonic, histogram binning and BBQ look
their fitted maps up with ``torch.searchsorted`` and ``gather`` (piecewise constant or
linear: their gradient in the logits is that of the lookup, zero between knots).
:class:`NumpyModule` runs any other calibrator's numpy ``predict_log_proba`` on the CPU
(not differentiable).

Absent options (-inf logits): the output is -inf there, and a row holding one is
renormalised over its present options (log-probabilities), as ``predict_log_proba``
does; each module computes on the present entries as its calibrator does.
"""

from __future__ import annotations

import math

import numpy as np

from calibrate._core.optional import require_torch

# imported only by Calibrator.to_torch(): without torch, a one-line error saying how to get it
torch = require_torch("Calibrator.to_torch()")
nn = torch.nn

F64 = torch.float64


def _buffer(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64)).clone()


class CalibrationModule(nn.Module):
    """Base: ``forward(logits)`` casts to float64, flattens the leading dimensions to rows,
    applies ``calibrate(z)`` (z: (n, k) float64) and restores the shape and dtype."""

    def calibrate(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def calibrate_absent(self, z: torch.Tensor, absent: torch.Tensor) -> torch.Tensor:
        """calibrate(z) for rows holding -inf logits (absent: (n, k) bool); the caller masks
        the absent entries. Default: calibrate(z) itself (finite at the present entries)."""
        return self.calibrate(z)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        dtype = logits.dtype if logits.is_floating_point() else F64
        z = logits.to(F64)
        z = z.reshape(-1, z.shape[-1])
        absent = torch.isneginf(z)
        if bool(absent.any()):
            # absent options (-inf logits): -inf out, each row renormalised over its present
            # options (log-probabilities; a row's only present option gets 0), as predict_log_proba
            out = self.calibrate_absent(z, absent).masked_fill(absent, -math.inf)
            single = (~absent).sum(dim=1, keepdim=True) == 1
            out = torch.where(single & ~absent, torch.zeros_like(out), out)
            out = torch.log_softmax(out, dim=1)
        else:
            out = self.calibrate(z)
        return out.reshape(logits.shape).to(dtype)


class TemperatureModule(CalibrationModule):
    """logits -> logits / T (T a float64 buffer)."""

    def __init__(self, temperature: float):
        super().__init__()
        self.register_buffer("temperature", torch.tensor(float(temperature), dtype=F64))

    def calibrate(self, z):
        return z * (1.0 / self.temperature)


class AffineModule(CalibrationModule):
    """logits -> logits * w + b (vector scaling: w (k,)) or logits @ W.T + b (matrix: W (k, k))."""

    def __init__(self, weights, bias):
        super().__init__()
        self.register_buffer("weights", _buffer(weights))
        self.register_buffer("bias", _buffer(bias))

    def calibrate(self, z):
        w = self.weights
        return z * w + self.bias if w.ndim == 1 else z @ w.T + self.bias

    def calibrate_absent(self, z, absent):
        return self.calibrate(z.masked_fill(absent, 0.0))  # an absent logit's term is dropped


def one_vs_rest_log_odds(z: torch.Tensor) -> torch.Tensor:
    """(n, k) log p_j - log(1 - p_j) of softmax(z), without cancellation (as
    calibrate.calibrators.base.one_vs_rest_log_odds): the rest's log-sum-exp is
    m + log(S - e_j) for every class but the top one, summed directly for the top one."""
    top = z.argmax(dim=1, keepdim=True)
    m = z.gather(1, top)
    e = torch.exp(z - m)
    s = e.sum(dim=1, keepdim=True)
    rest = (s - e).scatter(1, top, 1.0)  # the top column is replaced below (no log(0) in the graph)
    lse_rest = torch.log(rest) + m
    zt = z.scatter(1, top, -math.inf)
    m2 = zt.max(dim=1, keepdim=True).values
    lse_top = m2 + torch.log(torch.exp(zt - m2).sum(dim=1, keepdim=True))
    return z - lse_rest.scatter(1, top, lse_top)


def _binary_or_renormalised(logit_or_lq: torch.Tensor, binary: bool) -> torch.Tensor:
    """Binary: [log sigmoid(-x), log sigmoid(x)] of x (n,); else log_softmax of lq (n, k)."""
    if binary:
        x = logit_or_lq
        return torch.stack([nn.functional.logsigmoid(-x), nn.functional.logsigmoid(x)], dim=1)
    return torch.log_softmax(logit_or_lq, dim=1)


class PlattModule(CalibrationModule):
    """Platt scaling: sigmoid(a s + b) on the one-vs-rest log-odds s (k = 2: class 1 only;
    k > 2: every class, renormalised in log space). a, b: (1,) or (k,)."""

    def __init__(self, a, b):
        super().__init__()
        self.register_buffer("a", _buffer(a))
        self.register_buffer("b", _buffer(b))

    def calibrate(self, z):
        s = one_vs_rest_log_odds(z)
        if z.shape[1] == 2:
            return _binary_or_renormalised(self.a[0] * s[:, 1] + self.b[0], True)
        return _binary_or_renormalised(nn.functional.logsigmoid(s * self.a + self.b), False)


class BetaModule(CalibrationModule):
    """Beta calibration: logit(q) = a ln p - b ln(1 - p) + c per fitted map (k = 2: class 1;
    k > 2: one-vs-rest, renormalised in log space). probs=True: the input holds
    probabilities (n, k), clipped to [eps, 1 - eps] and logged, as BetaCalibration(scores="probs")."""

    def __init__(self, a, b, c, probs: bool = False):
        super().__init__()
        self.register_buffer("a", _buffer(a))
        self.register_buffer("b", _buffer(b))
        self.register_buffer("c", _buffer(c))
        self.probs = bool(probs)

    def calibrate(self, z):
        if self.probs:
            eps = float(np.finfo(np.float64).eps)
            z = torch.log(z.clamp(eps, 1.0 - eps))
        lp = torch.log_softmax(z, dim=1)
        l1p = lp - one_vs_rest_log_odds(z)
        bad = ~(torch.isfinite(lp) & torch.isfinite(l1p))  # absent options, a row's only present one
        if bool(bad.any()):
            lp, l1p = lp.masked_fill(bad, 0.0), l1p.masked_fill(bad, 0.0)
        if z.shape[1] == 2:
            return _binary_or_renormalised(self.a[0] * lp[:, 1] - self.b[0] * l1p[:, 1] + self.c[0], True)
        return _binary_or_renormalised(nn.functional.logsigmoid(self.a * lp - self.b * l1p + self.c), False)


class DirichletModule(CalibrationModule):
    """Dirichlet calibration: log_softmax(W log_softmax(z) + b), W (k, k), b (k,)."""

    def __init__(self, weights, bias):
        super().__init__()
        self.register_buffer("weights", _buffer(weights))
        self.register_buffer("bias", _buffer(bias))

    def calibrate(self, z):
        x = torch.log_softmax(z, dim=1)
        return torch.log_softmax(x @ self.weights.T + self.bias, dim=1)

    def calibrate_absent(self, z, absent):
        x = torch.log_softmax(z, dim=1).masked_fill(absent, 0.0)  # an absent option's term is dropped
        return (x @ self.weights.T + self.bias).masked_fill(absent, -math.inf)


class EnsembleTemperatureModule(CalibrationModule):
    """Ensemble temperature scaling: log(w_1 softmax(z / T) + w_2 softmax(z) + w_3 / k)."""

    def __init__(self, temperature: float, weights):
        super().__init__()
        self.register_buffer("temperature", torch.tensor(float(temperature), dtype=F64))
        with np.errstate(divide="ignore"):
            self.register_buffer("log_weights", _buffer(np.log(np.asarray(weights, dtype=np.float64))))

    def calibrate(self, z):
        lw = self.log_weights
        a = lw[0] + torch.log_softmax(z / self.temperature, dim=1)
        b = lw[1] + torch.log_softmax(z, dim=1)
        return torch.logaddexp(torch.logaddexp(a, b), lw[2] - math.log(z.shape[1]))

    def calibrate_absent(self, z, absent):
        lw = self.log_weights
        a = lw[0] + torch.log_softmax(z / self.temperature, dim=1)
        b = lw[1] + torch.log_softmax(z, dim=1)
        lu = lw[2] - torch.log((~absent).sum(dim=1, keepdim=True).to(F64))  # uniform over present options
        return torch.logaddexp(torch.logaddexp(a, b), lu.expand_as(z).masked_fill(absent, -math.inf))


class _OneVsRestMaps(CalibrationModule):
    """Base of the maps on p_j = softmax(z)_j: ``map_probs(j, p)`` gives map j's calibrated
    probabilities (n,); each is clipped to [min_prob, 1 - min_prob], then k = 2: [1 - q, q]
    from class 1's map; k > 2: the k maps renormalised to sum to 1."""

    def __init__(self, min_prob: float, n_maps: int):
        super().__init__()
        self.min_prob = float(min_prob)
        self.n_maps = int(n_maps)

    def map_probs(self, j: int, p: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def calibrate(self, z):
        p = torch.exp(torch.log_softmax(z, dim=1))
        lo, hi = self.min_prob, 1.0 - self.min_prob
        if z.shape[1] == 2:
            q1 = self.map_probs(0, p[:, 1].contiguous()).clamp(lo, hi)
            return torch.log(torch.stack([1.0 - q1, q1], dim=1))
        q = torch.stack([self.map_probs(j, p[:, j].contiguous()) for j in range(self.n_maps)], dim=1)
        q = q.clamp(lo, hi)
        return torch.log(q / q.sum(dim=1, keepdim=True))


class IsotonicModule(_OneVsRestMaps):
    """Isotonic maps: linear interpolation between the knots (x, y), constant outside (np.interp).

    The knots of all maps are one flat float64 buffer each (x, y), map j at offsets[j]:offsets[j+1].
    """

    def __init__(self, maps, min_prob: float):
        super().__init__(min_prob, len(maps))
        self.register_buffer("x", _buffer(np.concatenate([np.asarray(m["x"], np.float64) for m in maps])))
        self.register_buffer("y", _buffer(np.concatenate([np.asarray(m["y"], np.float64) for m in maps])))
        self.offsets = [0, *np.cumsum([len(m["x"]) for m in maps]).tolist()]

    def map_probs(self, j, p):
        s, e = self.offsets[j], self.offsets[j + 1]
        xp, fp = self.x[s:e], self.y[s:e]
        if e - s == 1:
            return fp.expand_as(p).clone()
        i = (torch.searchsorted(xp, p, right=True) - 1).clamp(0, e - s - 2)  # xp[i] <= p < xp[i + 1]
        x0, x1, y0, y1 = xp[i], xp[i + 1], fp[i], fp[i + 1]
        out = (y1 - y0) / (x1 - x0) * (p - x0) + y0
        out = torch.where(p < xp[0], fp[0], out)
        return torch.where(p >= xp[-1], fp[-1], out)


class BinnedModule(_OneVsRestMaps):
    """Histogram binning and BBQ: map j = sum over its models of weight x the value of the
    bin holding p (bins e_b < p <= e_{b+1}, the first also holding 0: calibrate._core.binning).

    maps: per map a list of (edges (B+1,), values (B,)) models and their weights (M,).
    Map j's models are padded to one (M, B_max + 1) block of edges (+inf beyond a model's
    own) and one (M, B_max) block of values, stored flat; one searchsorted looks p up in
    all of them (temporaries of M x n values per map for n rows).
    """

    def __init__(self, maps, min_prob: float):
        super().__init__(min_prob, len(maps))
        edges, values, n_bins, weights, self.shapes = [], [], [], [], []
        for models, w in maps:
            b_max = max(len(v) for _, v in models)
            e = np.full((len(models), b_max + 1), np.inf)
            v = np.zeros((len(models), b_max))
            for i, (me, mv) in enumerate(models):
                e[i, : len(me)] = me
                v[i, : len(mv)] = mv
            edges.append(e.ravel())
            values.append(v.ravel())
            n_bins.append([len(mv) for _, mv in models])
            weights.append(np.asarray(w, np.float64))
            self.shapes.append((len(models), b_max))
        self.register_buffer("edges", _buffer(np.concatenate(edges)))
        self.register_buffer("values", _buffer(np.concatenate(values)))
        self.register_buffer("weights", _buffer(np.concatenate(weights)))
        self.register_buffer("n_bins", torch.as_tensor(np.concatenate(n_bins), dtype=torch.int64))
        self.offsets = np.cumsum([(0, 0, 0)] + [(m * (b + 1), m * b, m) for m, b in self.shapes], axis=0).tolist()

    def map_probs(self, j, p):
        m, b_max = self.shapes[j]
        oe, ov, om = self.offsets[j]
        edges = self.edges[oe: oe + m * (b_max + 1)].view(m, b_max + 1)
        values = self.values[ov: ov + m * b_max].view(m, b_max)
        top = (self.n_bins[om: om + m] - 1)[:, None]
        idx = torch.searchsorted(edges, p.expand(m, -1).contiguous(), right=False) - 1
        idx = torch.minimum(idx.clamp_min(0), top)
        return (self.weights[om: om + m, None] * values.gather(1, idx)).sum(dim=0)


class NumpyModule(nn.Module):
    """Any fitted calibrator through its numpy ``predict_log_proba`` on the CPU, in float64
    (not differentiable): for calibrators without a torch form of their own."""

    def __init__(self, calibrator):
        super().__init__()
        self.calibrator = calibrator

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        z = logits.detach().to("cpu", F64).numpy()
        lp = self.calibrator.predict_log_proba(z)
        return torch.as_tensor(np.asarray(lp), dtype=logits.dtype, device=logits.device)
