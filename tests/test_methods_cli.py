"""`calibrate fit --method dirichlet|beta|ets` then `apply`, in process."""

import numpy as np
import pytest
from conftest import make_logits

import calibrate
from calibrate.cli import main


@pytest.mark.parametrize("method,k", [("dirichlet", 3), ("beta", 2), ("beta", 3), ("ets", 4)])
def test_fit_and_apply_from_the_command_line(tmp_path, method, k, capsys):
    z, y = make_logits(n=300, k=k, temperature=2.0, seed=k)
    np.savez(tmp_path / "val.npz", logits=z, labels=y)
    assert main(["fit", str(tmp_path / "val.npz"), "--method", method, "-o", str(tmp_path / "c.json")]) == 0
    assert f"method      {method}" in capsys.readouterr().out
    assert main(["apply", str(tmp_path / "c.json"), str(tmp_path / "val.npz"), "-o", str(tmp_path / "p.npz")]) == 0
    cal = calibrate.load(tmp_path / "c.json")
    np.testing.assert_array_equal(np.load(tmp_path / "p.npz")["probs"], cal.predict_proba(z))
