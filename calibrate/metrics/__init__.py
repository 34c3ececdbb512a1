"""Metrics: thin functions over :mod:`calibrate._core.stats`.

calibration (ECE family, NLL, Brier, reliability curves: the names below), smooth (smooth
ECE), decomposition (Brier and log-loss decompositions, over/under-confidence), selective
(risk-coverage), ood (detection scores and metrics), uncertainty (aleatoric / epistemic
split of sampled predictions), summary (what ``calibrate evaluate`` prints), cumulative
(ECCE: cumulative calibration error, no bins), multicalibration (ECCE over feature segments),
multilabel ((n, L) independent sigmoid outputs).
"""

from calibrate.metrics import (
    cumulative,
    decomposition,
    multicalibration,
    multilabel,
    ood,
    selective,
    smooth,
    summary,
    uncertainty,
)
from calibrate.metrics.calibration import (
    BINNINGS,
    METRIC_NAMES,
    NORMS,
    ReliabilityCurve,
    accuracy,
    all_metrics,
    brier,
    classwise_ece,
    ece,
    ece_from_confidences,
    log_softmax,
    mce,
    nll,
    nll_from_logits,
    reliability_curve,
    softmax,
)

__all__ = [
    "BINNINGS",
    "METRIC_NAMES",
    "NORMS",
    "ReliabilityCurve",
    "accuracy",
    "all_metrics",
    "brier",
    "classwise_ece",
    "cumulative",
    "decomposition",
    "ece",
    "ece_from_confidences",
    "log_softmax",
    "mce",
    "multicalibration",
    "multilabel",
    "nll",
    "nll_from_logits",
    "ood",
    "reliability_curve",
    "selective",
    "smooth",
    "softmax",
    "summary",
    "uncertainty",
]
