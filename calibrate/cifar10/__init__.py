"""The CIFAR-10 study, an application of the library (imports torch).

data (loading, split, cache) -> model (ResNet-9 style) -> training (loop, checkpoints) ->
sampling (MC dropout, ensembles) -> runner (``calibrate experiment``) -> report (its HTML).
Nothing in the library imports this package.
"""
