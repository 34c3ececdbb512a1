"""The CIFAR-10 study, an application of the library (imports torch).

data (loading, split, cache) -> images (normalised batches for calibrate.integrations.torch) -> model
(ResNet-9 style) -> training (loop, checkpoints, per-machine precision) -> sampling (MC
dropout, ensembles, through calibrate.integrations.torch) -> runner (``calibrate experiment``) -> report
(its sections; figures: the shift and OOD figures). corruptions, ood and shift: the shift and
OOD sets and their numbers.
Nothing in the library imports this package; only the CLI (``calibrate experiment``) calls runner.
"""
