"""Readers of language-model evaluation logs (calibrate.io.llm), on files written here in
the shapes the tools document: lm-evaluation-harness ``--log_samples`` rows (early nested
and later string-valued forms), OpenAI-compatible chat / completions responses (bare and
Batch-API wrapped), and plain tables."""

import json
import math

import numpy as np
import pytest

from calibrate._core.validation import InputError
from calibrate.io.llm import detect_format, iter_choice_blocks, read_choice_logits
from calibrate.metrics import brier

# ---------------------------------------------------------------------------------------
# lm-evaluation-harness sample rows
# ---------------------------------------------------------------------------------------


def lm_row_early(doc_id, ctx, conts, lls, target, doc=None):
    """The v0.4.0 shape: arguments as [ctx, continuation] pairs, numbers, nested resps."""
    return {
        "doc_id": doc_id,
        "doc": doc or {"question": ctx},
        "target": target,
        "arguments": [[ctx, c] for c in conts],
        "resps": [[[ll, False]] for ll in lls],
        "filtered_resps": [[ll, False] for ll in lls],
        "acc": 0.0,
    }


def lm_row_later(doc_id, ctx, conts, lls, target, doc=None):
    """Later versions: arguments as gen_args_i / arg_j, every value written as a string."""
    return {
        "doc_id": doc_id,
        "doc": doc or {"question": ctx},
        "target": str(target),
        "arguments": {f"gen_args_{i}": {"arg_0": ctx, "arg_1": c} for i, c in enumerate(conts)},
        "resps": [[[str(ll), "False"]] for ll in lls],
        "filtered_resps": [[str(ll), "False"] for ll in lls],
        "doc_hash": "0" * 64,
        "acc": 0.0,
        "acc_norm": 0.0,
    }


def write_jsonl(path, rows, end="\n"):
    path.write_text("\n".join(json.dumps(r) for r in rows) + end, encoding="utf-8")
    return path


LLS = [[-1.5, -0.25, -3.0, -2.0], [-0.5, -4.0, -1.0, -2.5], [-2.0, -2.2, -0.1, -9.0]]
CONTS = [" Paris", " London", " Rome", " Berlin"]


def test_early_nested_rows_give_the_loglikelihoods(tmp_path):
    rows = [lm_row_early(i, "Q?", CONTS, ll, i % 4) for i, ll in enumerate(LLS)]
    p = write_jsonl(tmp_path / "samples_geo_2024-05-01T10-00-00.123.jsonl", rows)
    out = read_choice_logits(p, format="lm-eval")
    np.testing.assert_array_equal(out.logits, np.array(LLS))
    np.testing.assert_array_equal(out.labels, [0, 1, 2])
    assert out.ids.tolist() == ["geo/0", "geo/1", "geo/2"]
    assert out.meta["task"].tolist() == ["geo"] * 3


def test_resps_alone_nested_three_deep_are_read(tmp_path):
    rows = [lm_row_early(i, "Q?", CONTS, ll, 0) for i, ll in enumerate(LLS)]
    for r in rows:
        del r["filtered_resps"]
    p = write_jsonl(tmp_path / "samples_geo_2024-05-01T10-00-00.jsonl", rows)
    np.testing.assert_array_equal(read_choice_logits(p).logits, np.array(LLS))


def test_later_string_valued_rows_give_the_same_logits(tmp_path):
    rows = [lm_row_later(i, "Q?", CONTS, ll, i % 4) for i, ll in enumerate(LLS)]
    p = write_jsonl(tmp_path / "samples_geo_2024-05-01T10-00-00.jsonl", rows)
    out = read_choice_logits(p)
    assert out.detected == "lm-eval"
    np.testing.assert_array_equal(out.logits, np.array(LLS))
    np.testing.assert_array_equal(out.labels, [0, 1, 2])


def test_flat_list_of_loglikelihoods_is_read(tmp_path):
    row = lm_row_later(0, "Q?", CONTS, LLS[0], 1)
    row["filtered_resps"] = [str(x) for x in LLS[0]]
    p = write_jsonl(tmp_path / "samples_geo_x.jsonl", [row])
    np.testing.assert_array_equal(read_choice_logits(p).logits, [LLS[0]])


@pytest.mark.parametrize("target", ["Rome", " Rome"])
def test_target_as_answer_text_is_matched_to_the_choice(tmp_path, target):
    row = lm_row_later(0, "Q?", CONTS, LLS[0], 0)
    row["target"] = target
    p = write_jsonl(tmp_path / "samples_geo_x.jsonl", [row])
    assert read_choice_logits(p).labels.tolist() == [2]


def test_target_text_matches_doc_choices_when_continuations_differ(tmp_path):
    doc = {"choices": {"text": ["red", "green", "blue"], "label": ["A", "B", "C"]}}
    row = lm_row_later(0, "Q?", [" A", " B", " C"], [-1.0, -2.0, -3.0], 0, doc=doc)
    row["target"] = "blue"
    p = write_jsonl(tmp_path / "samples_arc_x.jsonl", [row])
    assert read_choice_logits(p).labels.tolist() == [2]


def test_target_matching_no_choice_is_a_one_line_error(tmp_path):
    row = lm_row_later(0, "Q?", CONTS, LLS[0], 0)
    row["target"] = "Madrid"
    p = write_jsonl(tmp_path / "samples_geo_x.jsonl", [row])
    with pytest.raises(InputError, match=r"samples_geo_x\.jsonl:1: field 'target'") as e:
        read_choice_logits(p)
    assert "\n" not in str(e.value)


def test_target_index_beyond_the_choices_is_an_error(tmp_path):
    p = write_jsonl(tmp_path / "samples_geo_x.jsonl", [lm_row_later(0, "Q?", CONTS, LLS[0], 7)])
    with pytest.raises(InputError, match=r":1: field 'target': index 7"):
        read_choice_logits(p)


def test_uneven_choice_counts_are_padded_with_minus_inf_and_noted(tmp_path):
    rows = [lm_row_later(0, "Q?", CONTS, LLS[0], 1),
            lm_row_later(1, "Q?", CONTS[:2], [-0.5, -0.7], 0),
            lm_row_later(2, "Q?", CONTS[:3], [-0.1, -0.2, -0.3], 2)]
    p = write_jsonl(tmp_path / "samples_geo_x.jsonl", rows)
    out = read_choice_logits(p)
    assert out.logits.shape == (3, 4)
    np.testing.assert_array_equal(out.logits[1], [-0.5, -0.7, -np.inf, -np.inf])
    np.testing.assert_array_equal(out.logits[2], [-0.1, -0.2, -0.3, -np.inf])
    assert out.n_choices.tolist() == [4, 2, 3]
    assert out.padded == 2
    assert any("2 rows have fewer than 4 options" in n for n in out.notes)


def test_byte_norm_divides_by_the_utf8_bytes_of_the_choice(tmp_path):
    conts = [" café", " tea", " 水"]
    lls = [-6.0, -3.0, -4.5]
    p = write_jsonl(tmp_path / "samples_drinks_x.jsonl", [lm_row_later(0, "Q?", conts, lls, 0)])
    out = read_choice_logits(p, choice_score="byte-norm")
    np.testing.assert_array_equal(out.logits, [[-6.0 / 5, -3.0 / 3, -4.5 / 3]])


def test_char_norm_divides_by_the_characters_of_the_choice(tmp_path):
    conts = [" café", " tea", " 水"]
    lls = [-6.0, -3.0, -4.5]
    p = write_jsonl(tmp_path / "samples_drinks_x.jsonl", [lm_row_later(0, "Q?", conts, lls, 0)])
    out = read_choice_logits(p, choice_score="char-norm")
    np.testing.assert_array_equal(out.logits, [[-6.0 / 4, -3.0 / 3, -4.5 / 1]])


def test_byte_norm_without_delimiter_divides_by_the_whole_continuation(tmp_path):
    conts = [" café", " tea"]
    p = write_jsonl(tmp_path / "samples_d_x.jsonl", [lm_row_early(0, "Q?", conts, [-6.0, -3.0], 0)])
    out = read_choice_logits(p, choice_score="byte-norm", target_delimiter="")
    np.testing.assert_array_equal(out.logits, [[-6.0 / len(" café".encode()), -3.0 / 4]])


def test_token_norm_without_token_counts_says_why(tmp_path):
    p = write_jsonl(tmp_path / "samples_geo_x.jsonl", [lm_row_later(0, "Q?", CONTS, LLS[0], 0)])
    with pytest.raises(InputError, match=r":1: choice_score token-norm needs per-choice token counts"):
        read_choice_logits(p, choice_score="token-norm")


def test_token_norm_divides_by_the_given_counts(tmp_path):
    row = lm_row_later(0, "Q?", CONTS, LLS[0], 0)
    row["num_tokens"] = [1, 2, 1, 4]
    p = write_jsonl(tmp_path / "samples_geo_x.jsonl", [row])
    out = read_choice_logits(p, choice_score="token-norm")
    np.testing.assert_array_equal(out.logits, [[-1.5, -0.125, -3.0, -0.5]])


def test_subject_and_named_fields_become_metadata(tmp_path):
    rows = [lm_row_later(0, "Q?", CONTS, LLS[0], 0, doc={"subject": "geography", "level": 3}),
            lm_row_later(1, "Q?", CONTS, LLS[1], 0, doc={"level": 5})]
    p = write_jsonl(tmp_path / "samples_mmlu_geo_2024-01-01T00-00-00.jsonl", rows)
    out = read_choice_logits(p, fields=("doc.level",))
    assert out.meta["subject"].tolist() == ["geography", "mmlu_geo"]
    assert out.meta["doc.level"].tolist() == ["3", "5"]
    assert out.meta["task"].tolist() == ["mmlu_geo", "mmlu_geo"]


def test_folder_reads_every_sample_file(tmp_path):
    (tmp_path / "model_a").mkdir()
    write_jsonl(tmp_path / "model_a" / "samples_t1_2024-01-01T00-00-00.jsonl",
                [lm_row_later(0, "Q?", CONTS, LLS[0], 0)])
    write_jsonl(tmp_path / "model_a" / "samples_t2_2024-01-01T00-00-00.jsonl",
                [lm_row_later(0, "Q?", CONTS, LLS[1], 1)])
    (tmp_path / "model_a" / "results_2024-01-01T00-00-00.json").write_text("{}")
    out = read_choice_logits(tmp_path)
    assert out.ids.tolist() == ["t1/0", "t2/0"]


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_brier_equals_lm_evaluation_harness_brier_score(tmp_path):
    rng = np.random.default_rng(3)
    lls = -rng.exponential(3.0, size=(50, 4))
    gold = rng.integers(0, 4, size=50)
    rows = [lm_row_later(i, "Q?", CONTS, lls[i].tolist(), int(gold[i])) for i in range(50)]
    p = write_jsonl(tmp_path / "samples_geo_x.jsonl", rows)
    out = read_choice_logits(p)
    # lm-evaluation-harness: per sample (gold, softmax(lls)); aggregated as the mean over
    # samples of sum_j (p_j - onehot(gold)_j)^2, computed here in plain Python.
    total = 0.0
    for i in range(50):
        m = max(lls[i])
        e = [math.exp(x - m) for x in lls[i]]
        s = sum(e)
        total += sum((e[j] / s - (1.0 if j == gold[i] else 0.0)) ** 2 for j in range(4))
    reference = total / 50
    assert brier(_softmax(out.logits), out.labels) == pytest.approx(reference, rel=1e-12, abs=1e-15)


def test_blocks_concatenate_to_the_whole_file(tmp_path):
    rng = np.random.default_rng(0)
    rows = [lm_row_later(i, "Q?", CONTS, (-rng.exponential(size=4)).tolist(), i % 4) for i in range(7)]
    p = write_jsonl(tmp_path / "samples_geo_x.jsonl", rows)
    blocks = list(iter_choice_blocks(p, block_rows=3))
    assert [b.n for b in blocks] == [3, 3, 1]
    whole = read_choice_logits(p)
    np.testing.assert_array_equal(np.concatenate([b.logits for b in blocks]), whole.logits)
    np.testing.assert_array_equal(np.concatenate([b.labels for b in blocks]), whole.labels)


def test_truncated_last_line_names_the_line(tmp_path):
    rows = [lm_row_later(i, "Q?", CONTS, LLS[i], 0) for i in range(2)]
    p = tmp_path / "samples_geo_x.jsonl"
    text = json.dumps(rows[0]) + "\n" + json.dumps(rows[1])[:-20]
    p.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=r"samples_geo_x\.jsonl:2: the last line is incomplete JSON"):
        read_choice_logits(p, format="lm-eval")


def test_invalid_line_in_the_middle_names_the_line(tmp_path):
    p = tmp_path / "samples_geo_x.jsonl"
    p.write_text(json.dumps(lm_row_later(0, "Q?", CONTS, LLS[0], 0)) + "\n{oops\n"
                 + json.dumps(lm_row_later(1, "Q?", CONTS, LLS[1], 0)) + "\n")
    with pytest.raises(InputError, match=r"samples_geo_x\.jsonl:2: not valid JSON"):
        read_choice_logits(p, format="lm-eval")


# ---------------------------------------------------------------------------------------
# OpenAI-compatible responses
# ---------------------------------------------------------------------------------------


def chat_response(rid, positions, model="m-1"):
    """A chat.completion with logprobs; positions: [(generated token, lp, [(tok, lp), ...])]."""
    content = [{"token": t, "logprob": lp, "bytes": list(t.encode()),
                "top_logprobs": [{"token": a, "logprob": b, "bytes": list(a.encode())} for a, b in top]}
               for t, lp, top in positions]
    text = "".join(t for t, _, _ in positions)
    return {"id": rid, "object": "chat.completion", "created": 1700000000, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "logprobs": {"content": content, "refusal": None}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": len(positions), "total_tokens": 11}}


def batch_line(custom_id, body, status=200):
    return {"id": f"batch_req_{custom_id}", "custom_id": custom_id,
            "response": {"status_code": status, "request_id": "req_1", "body": body}, "error": None}


def test_a_and_space_a_are_merged_by_log_sum_exp(tmp_path):
    top = [("A", -0.9), (" A", -1.6), ("B", -2.0), ("C", -3.1), ("D", -3.3)]
    line = chat_response("r1", [("A", -0.9, top)])
    line["gold"] = "A"
    p = write_jsonl(tmp_path / "responses.jsonl", [line])
    out = read_choice_logits(p, labels_key="gold")
    s = [math.log(math.exp(-0.9) + math.exp(-1.6)), -2.0, -3.1, -3.3]
    z = math.log(sum(math.exp(x) for x in s))
    np.testing.assert_allclose(out.logits[0], [x - z for x in s], rtol=0, atol=1e-15)
    assert out.labels.tolist() == [0] and out.ids.tolist() == ["r1"]
    assert out.floored == 0


def test_answer_position_is_the_first_token_with_an_option_letter(tmp_path):
    positions = [("The", -0.1, [("The", -0.1), ("Answer", -2.5)]),
                 (" answer", -0.05, [(" answer", -0.05)]),
                 (" (", -0.2, [(" (", -0.2), (" is", -1.9)]),
                 ("B", -0.3, [("B", -0.3), ("C", -1.4), ("A", -3.0), ("D", -4.0)])]
    line = chat_response("r1", positions)
    line["gold"] = 1
    p = write_jsonl(tmp_path / "responses.jsonl", [line])
    out = read_choice_logits(p, labels_key="gold")
    s = np.array([-3.0, -0.3, -1.4, -4.0])
    np.testing.assert_allclose(out.logits[0], s - np.log(np.exp(s).sum()), atol=1e-15)


def test_absent_option_is_floored_at_the_smallest_listed_logprob(tmp_path):
    top = [("B", -0.2), ("(A", -1.9), ("A)", -2.3), ("C", -2.8), ("the", -5.5)]
    line = chat_response("r1", [("B", -0.2, top)])
    line["gold"] = "B"
    p = write_jsonl(tmp_path / "responses.jsonl", [line])
    out = read_choice_logits(p, labels_key="gold", missing="floor")
    s = [math.log(math.exp(-1.9) + math.exp(-2.3)), -0.2, -2.8, -5.5]
    z = math.log(sum(math.exp(x) for x in s))
    np.testing.assert_allclose(out.logits[0], [x - z for x in s], atol=1e-15)
    assert out.floored == 1
    assert any("1 rows had an option absent" in n for n in out.notes)


def test_absent_option_with_drop_lists_the_row(tmp_path):
    full = [("A", -0.2), ("B", -1.9), ("C", -2.3), ("D", -2.8)]
    part = [("B", -0.2), ("A", -1.9), ("C", -2.8)]
    lines = [chat_response("r1", [("A", -0.2, full)]), chat_response("r2", [("B", -0.2, part)])]
    for ln in lines:
        ln["gold"] = "A"
    p = write_jsonl(tmp_path / "responses.jsonl", lines)
    out = read_choice_logits(p, labels_key="gold", missing="drop")
    assert out.ids.tolist() == ["r1"]
    assert [rid for rid, _ in out.dropped] == ["r2"]
    assert "option D not among the top logprobs" in out.dropped[0][1]
    assert any("1 rows refused: r2" in n for n in out.notes)


def test_response_without_logprobs_is_a_one_line_error(tmp_path):
    line = chat_response("r1", [("A", -0.2, [("A", -0.2)])])
    del line["choices"][0]["logprobs"]
    line["gold"] = "A"
    p = write_jsonl(tmp_path / "responses.jsonl", [line])
    with pytest.raises(InputError, match=r"responses\.jsonl:1: field 'choices\[0\]\.logprobs': missing"):
        read_choice_logits(p, format="openai", labels_key="gold")


def test_truncated_response_line_names_the_line(tmp_path):
    a = chat_response("r1", [("A", -0.2, [("A", -0.2), ("B", -2.0), ("C", -3.0), ("D", -4.0)])])
    a["gold"] = "A"
    p = tmp_path / "responses.jsonl"
    p.write_text(json.dumps(a) + "\n" + json.dumps(a)[:50])
    with pytest.raises(InputError, match=r"responses\.jsonl:2: the last line is incomplete JSON"):
        read_choice_logits(p, format="openai", labels_key="gold")


def test_batch_api_lines_use_custom_id_and_list_failed_requests(tmp_path):
    top = [("C", -0.1), ("A", -2.5), ("B", -3.0), ("D", -3.5)]
    ok = batch_line("q-1", chat_response("chatcmpl-1", [("C", -0.1, top)]))
    ok["gold"] = "C"
    failed = batch_line("q-2", {"error": {"message": "Rate limit reached", "type": "rate_limit"}}, status=429)
    errored = {"id": "batch_req_3", "custom_id": "q-3", "response": None,
               "error": {"code": "server_error", "message": "internal error"}}
    p = write_jsonl(tmp_path / "batch_output.jsonl", [ok, failed, errored])
    out = read_choice_logits(p, labels_key="gold")
    assert out.detected == "openai"
    assert out.ids.tolist() == ["q-1"] and out.labels.tolist() == [2]
    reasons = dict(out.dropped)
    assert "status 429: Rate limit reached" in reasons["q-2"]
    assert "error: internal error" in reasons["q-3"]


def test_labels_joined_from_csv_report_unmatched_ids(tmp_path):
    top = [("A", -0.1), ("B", -2.5), ("C", -3.0), ("D", -3.5)]
    lines = [batch_line(f"q-{i}", chat_response(f"c{i}", [("A", -0.1, top)])) for i in (1, 2, 3)]
    p = write_jsonl(tmp_path / "batch_output.jsonl", lines)
    gold = tmp_path / "gold.csv"
    gold.write_text("custom_id,answer,subject\nq-1,A,law\nq-3,D,math\nq-9,B,art\n")
    out = read_choice_logits(p, labels=gold, join_on="custom_id", fields=("subject",))
    assert out.ids.tolist() == ["q-1", "q-3"]
    assert out.labels.tolist() == [0, 3]
    assert out.meta["subject"].tolist() == ["law", "math"]
    assert [rid for rid, _ in out.dropped] == ["q-2"]
    assert out.unmatched_labels == ["q-9"]
    assert any("1 ids in" in n and "q-9" in n for n in out.notes)


def test_labels_joined_from_jsonl_on_the_response_id(tmp_path):
    top = [("B", -0.1), ("A", -2.5), ("C", -3.0), ("D", -3.5)]
    p = write_jsonl(tmp_path / "r.jsonl", [chat_response("c1", [("B", -0.1, top)])])
    gold = write_jsonl(tmp_path / "gold.jsonl", [{"id": "c1", "label": 1}])
    out = read_choice_logits(p, format="openai", labels=gold, join_on="id")
    assert out.labels.tolist() == [1] and out.unmatched_labels == []


def test_legacy_completions_top_logprobs_are_read(tmp_path):
    line = {"id": "cmpl-1", "object": "text_completion", "model": "m",
            "choices": [{"text": " B", "index": 0, "finish_reason": "length",
                         "logprobs": {"tokens": [" B"], "token_logprobs": [-0.4],
                                      "top_logprobs": [{" B": -0.4, " A": -1.2, "B": -2.0,
                                                        " C": -3.0, " D": -3.5}],
                                      "text_offset": [0]}}],
            "gold": "B"}
    p = write_jsonl(tmp_path / "completions.jsonl", [line])
    out = read_choice_logits(p, labels_key="gold")
    s = np.array([-1.2, np.log(np.exp(-0.4) + np.exp(-2.0)), -3.0, -3.5])
    np.testing.assert_allclose(out.logits[0], s - np.log(np.exp(s).sum()), atol=1e-15)


def test_no_gold_source_for_responses_is_an_error(tmp_path):
    p = write_jsonl(tmp_path / "r.jsonl", [chat_response("c1", [("A", -0.1, [("A", -0.1)])])])
    with pytest.raises(InputError, match="no gold answers"):
        read_choice_logits(p)


# ---------------------------------------------------------------------------------------
# Plain tables
# ---------------------------------------------------------------------------------------


def test_csv_table_with_letter_labels_and_empty_cells(tmp_path):
    p = tmp_path / "scores.csv"
    p.write_text("id,A,B,C,label,subject\nq1,-0.1,-2.0,-3.0,B,law\nq2,-1.0,-0.5,,A,math\n")
    out = read_choice_logits(p)
    assert out.detected == "table"
    np.testing.assert_array_equal(out.logits, [[-0.1, -2.0, -3.0], [-1.0, -0.5, -np.inf]])
    assert out.labels.tolist() == [1, 0]
    assert out.ids.tolist() == ["q1", "q2"]
    assert out.meta["subject"].tolist() == ["law", "math"]
    assert out.padded == 1


def test_jsonl_table_with_a_list_column(tmp_path):
    p = write_jsonl(tmp_path / "t.jsonl", [{"logprobs": [-0.1, -2.0], "label": 0},
                                           {"logprobs": [-1.0, -0.5, -0.7], "label": 2}])
    out = read_choice_logits(p)
    assert out.detected == "table"
    np.testing.assert_array_equal(out.logits, [[-0.1, -2.0, -np.inf], [-1.0, -0.5, -0.7]])
    assert out.ids.tolist() == ["t.jsonl:1", "t.jsonl:2"]


def test_table_label_out_of_range_is_an_error(tmp_path):
    p = write_jsonl(tmp_path / "t.jsonl", [{"logprobs": [-0.1, -2.0], "label": 5}])
    with pytest.raises(InputError, match=r"t\.jsonl:1: field 'label'"):
        read_choice_logits(p)


def test_parquet_table(tmp_path):
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        p = tmp_path / "t.parquet"
        p.write_bytes(b"PAR1")
        with pytest.raises(InputError, match="pip install pyarrow"):
            read_choice_logits(p)
        return
    p = tmp_path / "t.parquet"
    pq.write_table(pa.table({"A": [-0.1, -1.0], "B": [-2.0, -0.5], "label": [1, 0]}), p)
    out = read_choice_logits(p)
    np.testing.assert_array_equal(out.logits, [[-0.1, -2.0], [-1.0, -0.5]])
    assert out.labels.tolist() == [1, 0]


# ---------------------------------------------------------------------------------------
# Detection
# ---------------------------------------------------------------------------------------


def test_auto_detection_from_the_first_line(tmp_path):
    lm = write_jsonl(tmp_path / "a.jsonl", [lm_row_later(0, "Q?", CONTS, LLS[0], 0)])
    bare = write_jsonl(tmp_path / "b.jsonl", [chat_response("c", [("A", -0.1, [("A", -0.1)])])])
    wrapped = write_jsonl(tmp_path / "c.jsonl", [batch_line("q", chat_response("c", []))])
    tab = write_jsonl(tmp_path / "d.jsonl", [{"logprobs": [-1.0, -2.0], "label": 0}])
    p = tmp_path / "e.jsonl"
    p.write_text("\n\n" + (tmp_path / "a.jsonl").read_text())
    assert [detect_format(x) for x in (lm, bare, wrapped, tab, p)] == [
        "lm-eval", "openai", "openai", "table", "lm-eval"]


def test_mixed_formats_are_refused(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [lm_row_later(0, "Q?", CONTS, LLS[0], 0)])
    write_jsonl(tmp_path / "b.jsonl", [{"logprobs": [-1.0, -2.0], "label": 0}])
    with pytest.raises(InputError, match="read one format at a time"):
        read_choice_logits(tmp_path)


def test_json_module_fallback_reads_the_same_values(tmp_path, monkeypatch):
    from calibrate.io.llm import _common

    rows = [lm_row_later(i, "Q?", CONTS, ll, i % 4) for i, ll in enumerate(LLS)]
    p = write_jsonl(tmp_path / "samples_geo_x.jsonl", rows)
    fast = read_choice_logits(p)
    monkeypatch.setattr(_common, "loads", json.loads)
    slow = read_choice_logits(p)
    np.testing.assert_array_equal(fast.logits, slow.logits)
    np.testing.assert_array_equal(fast.labels, slow.labels)


def test_readme_example_runs_on_logs_in_the_documented_shapes(tmp_path, monkeypatch):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S)
                 if "read_choice_logits" in b)
    folder = tmp_path / "lm_eval_out" / "my-model"
    folder.mkdir(parents=True)
    write_jsonl(folder / "samples_mmlu_anatomy_2024-01-01T00-00-00.jsonl",
                [lm_row_later(i, "Q?", CONTS, ll, i % 4, doc={"subject": "anatomy"})
                 for i, ll in enumerate(LLS)])
    top = [("A", -0.1), ("B", -2.5), ("C", -3.0)]
    write_jsonl(tmp_path / "batch_output.jsonl",
                [batch_line(f"q-{i}", chat_response(f"c{i}", [("A", -0.1, top)])) for i in (1, 2)])
    (tmp_path / "gold.csv").write_text("custom_id,answer\nq-1,A\nq-3,B\n")
    monkeypatch.chdir(tmp_path)
    ns = {}
    exec(compile(block, "README.md", "exec"), ns)
    assert ns["logs"].ids[:2].tolist() == ["mmlu_anatomy/0", "mmlu_anatomy/1"]
    assert ns["answers"].floored == 1 and ns["answers"].unmatched_labels == ["q-3"]
    assert [rid for rid, _ in ns["answers"].dropped] == ["q-2"]


def test_labels_key_reads_the_gold_from_another_field(tmp_path):
    row = lm_row_later(0, "Q?", CONTS, LLS[0], 0, doc={"answer": 3})
    p = write_jsonl(tmp_path / "samples_geo_x.jsonl", [row])
    assert read_choice_logits(p, labels_key="doc.answer").labels.tolist() == [3]


def test_batch_input_file_is_named_as_such(tmp_path):
    req = {"custom_id": "q-1", "method": "POST", "url": "/v1/chat/completions",
           "body": {"model": "m", "messages": [], "logprobs": True, "top_logprobs": 5}}
    p = write_jsonl(tmp_path / "batch_input.jsonl", [req])
    with pytest.raises(InputError, match="a Batch API input"):
        read_choice_logits(p)


def test_joined_label_that_is_not_an_option_names_the_labels_file_line(tmp_path):
    top = [("A", -0.1), ("B", -2.5), ("C", -3.0), ("D", -3.5)]
    p = write_jsonl(tmp_path / "out.jsonl", [batch_line("q-1", chat_response("c1", [("A", -0.1, top)]))])
    gold = tmp_path / "gold.csv"
    gold.write_text("custom_id,answer\nq-1,E\n")
    with pytest.raises(InputError, match=r"gold\.csv:2: field 'label of q-1': 'E' is not one of the options ABCD"):
        read_choice_logits(p, labels=gold)


def test_every_choice_minus_inf_is_refused(tmp_path):
    row = lm_row_early(0, "Q?", CONTS[:2], [-1.0, -2.0], 0)
    row["filtered_resps"] = [["-inf", "False"], ["-inf", "False"]]
    p = write_jsonl(tmp_path / "samples_geo_x.jsonl", [row])
    with pytest.raises(InputError, match=r":1: field 'filtered_resps': every choice has log-likelihood -inf"):
        read_choice_logits(p)


def test_gzipped_sample_log_is_read(tmp_path):
    import gzip

    rows = [lm_row_later(i, "Q?", CONTS, ll, 0) for i, ll in enumerate(LLS)]
    p = tmp_path / "samples_geo_2024-01-01T00-00-00.jsonl.gz"
    with gzip.open(p, "wt", encoding="utf-8") as f:
        f.write("\n".join(json.dumps(r) for r in rows) + "\n")
    out = read_choice_logits(p)
    np.testing.assert_array_equal(out.logits, np.array(LLS))
    assert out.meta["task"].tolist() == ["geo"] * 3


def test_placeholder_logprob_minus_9999_counts_as_not_listed(tmp_path):
    top = [("A", -0.2), ("B", -1.0), ("C", -2.0), ("D", -9999.0)]
    line = chat_response("r1", [("A", -0.2, top)])
    line["gold"] = "A"
    p = write_jsonl(tmp_path / "r.jsonl", [line])
    out = read_choice_logits(p, labels_key="gold")
    s = np.array([-0.2, -1.0, -2.0, -2.0])
    np.testing.assert_allclose(out.logits[0], s - np.log(np.exp(s).sum()), atol=1e-15)
    assert out.floored == 1


def test_response_without_any_option_letter_is_listed(tmp_path):
    lines = [chat_response("r1", [("Sure", -0.1, [("Sure", -0.1), ("I", -2.0)])]),
             chat_response("r2", [("B", -0.1, [("B", -0.1), ("A", -2.0), ("C", -3.0), ("D", -4.0)])])]
    for ln in lines:
        ln["gold"] = "B"
    p = write_jsonl(tmp_path / "r.jsonl", lines)
    out = read_choice_logits(p, labels_key="gold")
    assert out.ids.tolist() == ["r2"]
    assert out.dropped[0][0] == "r1" and "no option letter" in out.dropped[0][1]
