"""calibrate inside other libraries: :mod:`.sklearn` (a meta-estimator for any scikit-learn
classifier) and :mod:`.torch` (sampling from any ``nn.Module``, losses, mixup, calibrated
models). Each is imported on first use; neither is imported by ``import calibrate``."""
