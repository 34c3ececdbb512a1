"""The private core: numpy only; everything in the package stands on it.

validation (every input check and user-facing message), blocks (one block policy, in bytes),
binning (one bin rule), stats (sufficient statistics: update / merge / finish), dispatch
(the one place that sends a statistic to numpy blocks or to a chunked backend), ranking
(ties, AUROC, AURC), machine and optional (what this machine and environment offer).
Nothing here imports from the rest of :mod:`calibrate`.
"""
