"""``calibrate fit | evaluate | report LOGS... --format ...`` on language-model logs written
here in the documented shapes (no network), and saved predictions unchanged."""

import json

import numpy as np
import pytest
from conftest import run_cli

from calibrate import TemperatureScaling
from calibrate.io.llm import read_choice_logits


def lm_row(doc_id, lls, target, subject="s", split=None):
    conts = [f" choice {j}" for j in range(len(lls))]
    doc = {"question": "Q?", "subject": subject}
    if split is not None:
        doc["split"] = split
    return {"doc_id": doc_id, "doc": doc, "target": str(target),
            "arguments": {f"gen_args_{j}": {"arg_0": "Q?", "arg_1": c} for j, c in enumerate(conts)},
            "resps": [[[str(x), "False"]] for x in lls], "filtered_resps": [[str(x), "False"] for x in lls]}


def write_log(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def model_rows(n, sharpen, seed, k=4, split=False):
    rng = np.random.default_rng(seed)
    truth = np.random.default_rng(99)
    rows = []
    for i in range(n):
        y = int(truth.integers(0, k))
        z = truth.normal(size=k) + rng.normal(scale=0.5, size=k)
        z[y] += 1.0
        z = sharpen * z
        lls = z - z.max() - np.log(np.exp(z - z.max()).sum()) - 0.3
        rows.append(lm_row(i, lls.tolist(), y, subject=["bio", "chem"][i % 2],
                           split=("validation" if i % 3 == 0 else "test") if split else None))
    return rows


@pytest.fixture
def two_models(tmp_path):
    root = tmp_path / "logs"
    write_log(root / "model_a" / "samples_quiz_2024-01-01T00-00-00.jsonl", model_rows(120, 2.5, 1))
    write_log(root / "model_b" / "samples_quiz_2024-01-01T00-00-00.jsonl", model_rows(110, 1.0, 2))
    return root


def test_folder_of_two_models_yields_a_comparison_table_with_two_rows(two_models, tmp_path):
    out, js = tmp_path / "r.html", tmp_path / "r.json"
    code, stdout, err = run_cli("report", two_models, "--format", "lm-eval", "-o", out, "--json", js,
                                "--resamples", "100")
    assert code == 0, err
    data = json.loads(js.read_text())
    assert list(data["models"]) == ["model_a", "model_b"]
    html = out.read_text()
    assert "Models compared" in html and html.count("<td>model_a</td>") >= 2
    assert "model_a" in stdout and "model_b" in stdout


def test_shared_questions_are_counted_in_the_report(two_models, tmp_path):
    js = tmp_path / "r.json"
    code, _, err = run_cli("report", two_models, "-o", tmp_path / "r.html", "--json", js, "--resamples", "50")
    assert code == 0, err
    data = json.loads(js.read_text())
    n_a, n_b = data["models"]["model_a"]["n"], data["models"]["model_b"]["n"]
    assert data["shared"]["n"] == n_b < n_a        # model_b's questions are a subset of model_a's
    assert data["shared"]["dropped"] == {"model_a": n_a - n_b, "model_b": 0}
    assert set(data["paired_differences"]["model_b"]) == {"accuracy", "ece", "nll", "brier"}


def test_format_auto_says_what_it_detected(two_models):
    code, _, err = run_cli("evaluate", two_models / "model_a", "--format", "auto")
    assert code == 0, err
    assert "format lm-eval (detected from the content" in err


def test_model_by_field_groups_rows_by_a_named_field(tmp_path):
    rows = model_rows(60, 1.0, 3)
    for i, r in enumerate(rows):
        r["doc"]["source"] = "x" if i < 30 else "y"
    p = write_log(tmp_path / "samples_q_2024.jsonl", rows)
    code, out, err = run_cli("evaluate", p, "--model-by", "doc.source", "--json")
    assert code == 0, err
    assert {m: r["n"] for m, r in json.loads(out)["models"].items()} == {"x": 30, "y": 30}


def test_fit_on_the_named_split_equals_a_fit_on_those_rows(tmp_path):
    p = write_log(tmp_path / "m" / "samples_q_2024.jsonl", model_rows(150, 2.0, 4, split=True))
    code, out, err = run_cli("fit", p, "--format", "lm-eval", "--split-by", "doc.split", "--fit-split", "validation",
                             "-o", tmp_path / "t.json")
    assert code == 0, err
    cl = read_choice_logits(p, fields=("doc.split",))
    rows = cl.meta["doc.split"] == "validation"
    ref = TemperatureScaling().fit(cl.logits[rows], cl.labels[rows])
    got = json.loads((tmp_path / "t.json").read_text())["state"]["temperature_"]
    assert float(got) == pytest.approx(ref.temperature_, rel=1e-12)
    assert f"held out  n = {int((~rows).sum())}" in out


def test_fit_of_two_models_writes_one_calibrator_each(two_models, tmp_path):
    code, out, err = run_cli("fit", two_models, "-o", tmp_path / "{model}.json")
    assert code == 0, err
    assert (tmp_path / "model_a.json").exists() and (tmp_path / "model_b.json").exists()


def test_fit_of_two_models_into_one_file_is_refused(two_models, tmp_path):
    code, _, err = run_cli("fit", two_models, "-o", tmp_path / "t.json")
    assert code == 2 and "{model}" in err and "2 models" in err
    assert not (tmp_path / "t.json").exists()


def test_fit_split_value_not_found_lists_the_values(tmp_path):
    p = write_log(tmp_path / "m" / "samples_q_2024.jsonl", model_rows(30, 1.0, 5, split=True))
    code, _, err = run_cli("fit", p, "--split-by", "doc.split", "--fit-split", "dev", "-o", tmp_path / "t.json")
    assert code == 2 and "values found: test, validation" in err.replace("validation, test", "test, validation")


def test_truncated_line_is_one_error_line_naming_file_and_line(tmp_path):
    p = tmp_path / "m" / "samples_q_2024.jsonl"
    write_log(p, model_rows(5, 1.0, 6))
    p.write_text(p.read_text() + '{"doc_id": 5, "filtered_resps": [["-1', encoding="utf-8")
    code, _, err = run_cli("evaluate", p)
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("calibrate: error: ") and f"{p}:6:" in line and "truncated" in line


def test_bad_target_names_file_line_and_field(tmp_path):
    rows = model_rows(5, 1.0, 7)
    rows[2]["target"] = "9"
    p = write_log(tmp_path / "m" / "samples_q_2024.jsonl", rows)
    code, _, err = run_cli("report", p, "-o", tmp_path / "r.html")
    assert code == 2
    assert f"{p}:3: field 'target'" in err and "Traceback" not in err
    assert not (tmp_path / "r.html").exists()


def test_gold_minus_inf_rows_are_listed_by_id(tmp_path):
    rows = model_rows(80, 1.0, 8)
    y = int(rows[4]["target"])
    rows[4]["filtered_resps"][y][0] = "-inf"
    rows[4]["resps"][y][0][0] = "-inf"
    p = write_log(tmp_path / "m" / "samples_q_2024.jsonl", rows)
    js = tmp_path / "r.json"
    code, _, err = run_cli("report", p, "-o", tmp_path / "r.html", "--json", js, "--resamples", "50")
    assert code == 0, err
    data = json.loads(js.read_text())
    assert data["gold_minus_inf"] == {"m": ["q_2024/4"]}
    assert "q_2024/4" in (tmp_path / "r.html").read_text()


def test_padded_choices_flow_through_the_report(tmp_path):
    rows = model_rows(60, 1.0, 9)
    for r in rows[:20]:                      # three options instead of four
        g = int(r["target"])
        if g == 3:
            r["target"] = "0"
        for key in ("filtered_resps", "resps"):
            r[key] = r[key][:3]
        r["arguments"].pop("gen_args_3")
    p = write_log(tmp_path / "m" / "samples_q_2024.jsonl", rows)
    code, _, err = run_cli("report", p, "-o", tmp_path / "r.html", "--resamples", "50")
    assert code == 0, err


def test_labels_file_joined_on_an_id_for_responses(tmp_path):
    lines = []
    for i in range(40):
        top = [{"token": t, "logprob": lp} for t, lp in zip("ABCD", [-0.2 - (i % 4 == j) for j in range(4)])]
        body = {"object": "chat.completion", "model": "m", "choices": [{"index": 0, "logprobs": {"content": [
            {"token": "A", "logprob": -0.2, "top_logprobs": top}]}}]}
        lines.append({"custom_id": f"r{i}", "response": {"status_code": 200, "body": body}, "error": None})
    p = tmp_path / "m" / "out.jsonl"
    p.parent.mkdir()
    p.write_text("".join(json.dumps(x) + "\n" for x in lines))
    labels = tmp_path / "gold.csv"
    labels.write_text("custom_id,answer\n" + "".join(f"r{i},{'ABCD'[i % 4]}\n" for i in range(40)) + "zz,A\n")
    code, out, err = run_cli("evaluate", p, "--format", "openai", "--labels", labels, "--join-on", "custom_id", "--json")
    assert code == 0, err
    assert json.loads(out)["models"]["m"]["n"] == 40
    assert "zz" in err                        # the unmatched id is listed


def test_byte_norm_choice_score_is_passed_to_the_reader(tmp_path):
    p = write_log(tmp_path / "m" / "samples_q_2024.jsonl", model_rows(30, 1.0, 10))
    a = json.loads(run_cli("evaluate", p, "--json")[1])["models"]["m"]["nll"]
    b = json.loads(run_cli("evaluate", p, "--choice-score", "byte-norm", "--json")[1])["models"]["m"]["nll"]
    ref = read_choice_logits(p, choice_score="byte-norm")
    assert a != b
    assert b == pytest.approx(float(np.mean(-(ref.logits - np.log(np.exp(ref.logits).sum(1, keepdims=True)))
                                            [np.arange(ref.n), ref.labels])), rel=1e-10)


def test_saved_predictions_are_read_as_before(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", logits=rng.normal(size=(50, 3)), labels=rng.integers(0, 3, 50))
    code, out, err = run_cli("evaluate", tmp_path / "d.npz", "--json")
    assert code == 0, err and "format" not in err
    assert json.loads(out)["n"] == 50


def test_two_saved_prediction_files_are_refused_in_one_line(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        np.savez(tmp_path / f"{name}.npz", logits=rng.normal(size=(20, 3)), labels=rng.integers(0, 3, 20))
    code, _, err = run_cli("evaluate", tmp_path / "a.npz", tmp_path / "b.npz")
    assert code == 2 and "one DATA file" in err


def test_readme_example_commands_run_on_the_committed_logs(tmp_path, monkeypatch):
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(repo)
    code, out, err = run_cli("fit", "examples/llm_logs", "--format", "lm-eval", "-o", tmp_path / "{model}.json")
    assert code == 0, err
    code, out, err = run_cli("report", "examples/llm_logs", "--format", "lm-eval", "-o", tmp_path / "r.html",
                             "--json", tmp_path / "r.json", "--resamples", "100")
    assert code == 0, err
    assert list(json.loads((tmp_path / "r.json").read_text())["models"]) == ["model_a", "model_b"]


def test_committed_example_logs_are_what_the_script_writes(tmp_path):
    import runpy
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    ns = runpy.run_path(str(repo / "examples" / "make_llm_logs.py"))
    ns["main"](tmp_path / "llm_logs")
    ours = sorted(p.relative_to(tmp_path / "llm_logs") for p in (tmp_path / "llm_logs").rglob("*.jsonl"))
    committed = sorted(p.relative_to(repo / "examples" / "llm_logs")
                       for p in (repo / "examples" / "llm_logs").rglob("*.jsonl"))
    assert ours == committed and len(ours) == 4
    for rel in ours:
        assert (tmp_path / "llm_logs" / rel).read_bytes() == (repo / "examples" / "llm_logs" / rel).read_bytes()


def test_readme_fit_output_is_what_the_command_prints(tmp_path, monkeypatch):
    import re
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    readme = (repo / "README.md").read_text()
    block = re.search(r"\$ calibrate fit examples/llm_logs[^\n]*\n(.*?)\n\n", readme, flags=re.S).group(1)
    monkeypatch.chdir(repo)
    code, out, err = run_cli("fit", "examples/llm_logs", "--format", "lm-eval", "-o", tmp_path / "{model}.json")
    assert code == 0, err
    for line in block.splitlines():
        if "wrote" not in line:
            assert line in out.splitlines()


def test_report_fit_on_separate_logs_fits_each_model_there(tmp_path):
    val, test = tmp_path / "val", tmp_path / "test"
    for root, seed in ((val, 20), (test, 21)):
        write_log(root / "model_a" / "samples_quiz_2024.jsonl", model_rows(80, 2.5, seed))
        write_log(root / "model_b" / "samples_quiz_2024.jsonl", model_rows(80, 1.0, seed + 10))
    js = tmp_path / "r.json"
    code, _, err = run_cli("report", test, "--fit-on", val, "-o", tmp_path / "r.html", "--json", js,
                           "--resamples", "50")
    assert code == 0, err
    data = json.loads(js.read_text())
    for m in ("model_a", "model_b"):
        cl = read_choice_logits(val / m)
        t = TemperatureScaling().fit(cl.logits, cl.labels).temperature_
        assert data["models"][m]["metrics"]["temperature"]["estimate"] == pytest.approx(t, rel=1e-12)
        assert data["models"][m]["n"] == 80 and data["models"][m]["n_fit"] == 80


def test_report_fit_on_with_other_model_names_is_refused(tmp_path):
    write_log(tmp_path / "val" / "x" / "samples_q_2024.jsonl", model_rows(20, 1.0, 1))
    write_log(tmp_path / "val" / "y" / "samples_q_2024.jsonl", model_rows(20, 1.0, 1))
    write_log(tmp_path / "test" / "model_a" / "samples_q_2024.jsonl", model_rows(20, 1.0, 2))
    write_log(tmp_path / "test" / "model_b" / "samples_q_2024.jsonl", model_rows(20, 1.0, 2))
    code, _, err = run_cli("report", tmp_path / "test", "--fit-on", tmp_path / "val", "-o", tmp_path / "r.html")
    assert code == 2 and "no logs of model 'model_a'" in err
