"""Applications of the library. Nothing in the library imports them.

:mod:`calibrate.apps.cifar10`: the CIFAR-10 study behind ``calibrate experiment``.
"""
