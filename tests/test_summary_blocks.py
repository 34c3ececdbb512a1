"""`calibrate evaluate`'s row-block summary equals the in-memory one; the machine words."""

import numpy as np
import pytest

import calibrate
from calibrate._core.machine import human_duration
from calibrate.metrics.summary import summary_in_blocks, summary_metrics


@pytest.mark.parametrize("block_bytes", [8 * 64, 8 << 20])
def test_summary_in_blocks_equals_summary_metrics(monkeypatch, block_bytes):
    rng = np.random.default_rng(0)
    z = (rng.normal(size=(3000, 6)) * 3).astype(np.float32)
    y = rng.integers(0, 6, 3000)
    z[:5] = 0.0  # ties in confidence
    from calibrate.backends import streaming

    real = streaming.evaluate_in_blocks
    monkeypatch.setattr(streaming, "evaluate_in_blocks",
                        lambda *a, **k: real(*a, block_bytes=block_bytes, **k))
    got = summary_in_blocks(z, y, 15)
    ref = summary_metrics(calibrate.softmax(z), y, 15, logits=z)
    assert set(got) == set(ref)
    for key in ref:
        assert got[key] == pytest.approx(ref[key], rel=1e-12, abs=1e-14), key


def test_summary_in_blocks_applies_the_transform_block_by_block():
    rng = np.random.default_rng(1)
    z, y = rng.normal(size=(500, 4)) * 4, rng.integers(0, 4, 500)
    cal = calibrate.TemperatureScaling(bounds=(0.05, 100)).fit(z, y)
    got = summary_in_blocks(z, y, 10, transform=cal.predict_log_proba)
    lp = cal.predict_log_proba(z)
    ref = summary_metrics(np.exp(lp), y, 10, logits=lp)
    assert got["nll"] == pytest.approx(ref["nll"], rel=1e-12)
    assert got["brier_calibration"] == pytest.approx(ref["brier_calibration"], rel=1e-12)


@pytest.mark.parametrize("seconds,text", [(5, "5 s"), (119, "119 s"), (120, "2 min"), (7199, "120 min"),
                                          (7200, "2.0 h")])
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text
