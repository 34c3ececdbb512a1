"""The README's "your own model" example is examples/own_model.py, verbatim, and it runs."""

import re
import runpy
from pathlib import Path

import pytest

pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[1]


def test_readme_shows_the_example_file_verbatim():
    code = (ROOT / "examples" / "own_model.py").read_text()
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert code in blocks


def test_own_model_example_runs_and_calibrates(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ns = runpy.run_path(str(ROOT / "examples" / "own_model.py"), run_name="__main__")
    out = capsys.readouterr().out
    before = float(re.search(r"ECE before (\S+)", out).group(1))
    after = float(re.search(r"ECE after\s+(\S+)", out).group(1))
    assert ns["cal"].temperature_ > 1 and after < before  # the over-fitted MLP was over-confident
    assert tuple(ns["log_p"].shape) == (500, 2) and tuple(ns["samples"].shape) == (10, 500, 2)
    assert list(tmp_path.iterdir()) == []  # writes nothing
