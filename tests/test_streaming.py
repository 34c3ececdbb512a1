"""The streaming accumulator equals the one-shot metrics under any batch split and merge order."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_logits
from hypothesis import given, settings
from hypothesis import strategies as st

from calibrate import metrics
from calibrate.backends.streaming import CalibrationAccumulator

Z, Y = make_logits(n=3000, k=7, temperature=2.0, seed=12)
P = metrics.softmax(Z)
ONE_SHOT = {
    "ece": metrics.ece(P, Y), "ece_l2": metrics.ece(P, Y, norm="l2"), "mce": metrics.mce(P, Y),
    "ece_l2_debiased": metrics.ece(P, Y, norm="l2", debiased=True), "classwise_ece": metrics.classwise_ece(P, Y),
    "nll": metrics.nll_from_logits(Z, Y), "brier": metrics.brier(P, Y), "accuracy": metrics.accuracy(P, Y),
}


def _check(res):
    for key, ref in ONE_SHOT.items():
        assert res[key] == pytest.approx(ref, rel=1e-12, abs=1e-14), key


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 3000), min_size=1, max_size=8), st.randoms(use_true_random=False))
def test_any_split_and_merge_order_equals_one_shot(cuts, rnd):
    bounds = sorted(set([0, 3000] + [c for c in cuts if c < 3000]))
    parts = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        parts.append(CalibrationAccumulator(7).update(logits=Z[a:b], labels=Y[a:b]))
    rnd.shuffle(parts)
    total = parts[0]
    for p in parts[1:]:
        total.merge(p)
    _check(total.compute())


def test_probs_input_equals_logits_input_except_nll():
    a = CalibrationAccumulator(7).update(P, Y).compute()
    b = CalibrationAccumulator(7).update(logits=Z, labels=Y).compute()
    assert a["ece"] == b["ece"] and a["nll"] == pytest.approx(b["nll"], rel=1e-9)


def test_state_size_does_not_grow_with_data():
    acc = CalibrationAccumulator(7)
    size = sum(v.nbytes for v in acc.state_dict().values())
    for _ in range(5):
        acc.update(logits=Z, labels=Y)
    assert sum(v.nbytes for v in acc.state_dict().values()) == size
    assert acc.compute()["n"] == 5 * 3000


def test_state_dict_round_trip():
    acc = CalibrationAccumulator(7).update(logits=Z, labels=Y)
    again = CalibrationAccumulator(7).load_state_dict(acc.state_dict())
    assert again.compute() == acc.compute()


def test_fixed_edges_from_a_first_pass_give_equal_mass_ece():
    from calibrate._core.binning import equal_mass_edges

    conf = P.max(1)
    acc = CalibrationAccumulator(7, edges=equal_mass_edges(conf, 15), classwise=False)
    for i in range(0, 3000, 500):
        acc.update(logits=Z[i:i + 500], labels=Y[i:i + 500])
    assert acc.compute()["ece"] == pytest.approx(metrics.ece(P, Y, binning="mass"), rel=1e-12)


def test_mismatched_merge_and_empty_compute_are_errors():
    with pytest.raises(ValueError, match="differ"):
        CalibrationAccumulator(7).merge(CalibrationAccumulator(7, n_bins=10))
    with pytest.raises(ValueError, match="no data"):
        CalibrationAccumulator(7).compute()


def test_merging_across_two_processes_with_torch_distributed(tmp_path):
    pytest.importorskip("torch.distributed")
    out = tmp_path / "res.json"
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-m", "experiments.distributed_metrics", "--world-size", "2", "--rows", "20000",
                        "--batch", "3000", "--out", str(out)], capture_output=True, text=True, cwd=root, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    for key, ref in res["one_shot"].items():
        assert res["streamed"][key] == pytest.approx(ref, rel=1e-12, abs=1e-14), key
