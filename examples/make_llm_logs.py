"""Write the tiny example of lm-evaluation-harness sample logs in examples/llm_logs/.

Two "models" (folders model_a, model_b), two MMLU-style tasks of 60 four-choice
questions each, in the shape lm-evaluation-harness ``--log_samples`` writes
(``samples_<task>_<date>.jsonl``: doc_id, doc, target, arguments as gen_args_i, resps and
filtered_resps as strings). The log-likelihoods are synthetic and seeded: model_a is
over-confident (its log-likelihoods are sharpened), model_b nearly calibrated; model_b has
no log of three of the questions, so the two share 117 of 120. Re-running this script
rewrites the same bytes.

    python examples/make_llm_logs.py            # writes examples/llm_logs/
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "llm_logs"
TASKS = {"mmlu_astronomy": "astronomy", "mmlu_virology": "virology"}
DATE = "2024-06-01T12-00-00.000000"
N_PER_TASK = 60
LETTERS = "ABCD"


def rows_for(model: str, sharpen: float, seed: int, skip=()):
    rng = np.random.default_rng(seed)
    out = {}
    truth_rng = np.random.default_rng(1234)
    for task, subject in TASKS.items():
        rows = []
        for doc_id in range(N_PER_TASK):
            gold = int(truth_rng.integers(0, 4))
            base = truth_rng.normal(0.0, 1.0, 4)
            base[gold] += 1.2
            z = sharpen * (base + rng.normal(0.0, 0.6, 4))
            lls = z - np.log(np.exp(z - z.max()).sum()) - z.max() - rng.uniform(0.5, 3.0)
            if (task, doc_id) in skip:
                continue
            choices = [f"answer {LETTERS[j]} to question {doc_id}" for j in range(4)]
            ctx = f"The following is a question about {subject}.\nQuestion {doc_id}?\nAnswer:"
            rows.append({
                "doc_id": doc_id,
                "doc": {"question": f"Question {doc_id}?", "subject": subject, "choices": choices, "answer": gold},
                "target": gold,
                "arguments": {f"gen_args_{j}": {"arg_0": ctx, "arg_1": " " + c} for j, c in enumerate(choices)},
                "resps": [[[f"{ll:.6f}", "False"]] for ll in lls],
                "filtered_resps": [[f"{ll:.6f}", "False"] for ll in lls],
                "filter": "none",
                "metrics": ["acc", "acc_norm"],
                "acc": float(int(np.argmax(lls)) == gold),
            })
        out[task] = rows
    return out


def main(out=OUT) -> None:
    out = Path(out)
    models = {"model_a": rows_for("model_a", 2.5, 1),
              "model_b": rows_for("model_b", 1.0, 2, skip={("mmlu_astronomy", 6), ("mmlu_astronomy", 12),
                                                            ("mmlu_virology", 7)})}
    for model, tasks in models.items():
        (out / model).mkdir(parents=True, exist_ok=True)
        for task, rows in tasks.items():
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            (out / model / f"samples_{task}_{DATE}.jsonl").write_text(text, encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else OUT)
