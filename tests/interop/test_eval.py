"""eval: lm-eval-style scoring checked against an independent numpy forward pass, the
raw data files (request strings rebuilt here from SOURCES.md), and llama.cpp's
`llama-perplexity --hellaswag` on the same HellaSwag items.

Nothing is skipped: a missing binary, fixture, model or llama.cpp tool is a failure.
"""
import bz2
import concurrent.futures
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from conftest import REPO, SHARED, run, run_json

sys.path.insert(0, str(REPO / "tests"))
from oracle.numpy_forward import forward, load  # noqa: E402

EVAL_DATA = SHARED / "data/eval"
LLAMA_BIN = Path(os.environ.get("CKPT_LLAMA_CPP_BIN", REPO / ".cache/llama-cpp/bin"))
# HellaSwag items for the llama.cpp peer check (each is one llama-perplexity run).
# 100 keeps the test at a few minutes on 2 cores; 200 gave the same verdict on 200/200.
HELLASWAG_ITEMS = int(os.environ.get("CKPT_EVAL_HELLASWAG_ITEMS", "100"))


# ---------------------------------------------------------------- lm-eval, rebuilt here

def encode_pair(tok, context, continuation):
    """lm-eval HFLM._encode_pair (no BOS, as v0.4's HF backend for causal LMs)."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    enc = lambda s: tok.encode(s, add_special_tokens=False).ids
    whole = enc(context + continuation)
    ctx = enc(context)
    return ctx, whole[len(ctx):]


def log_softmax(x):
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def numpy_loglikelihood(config, weights, tok, context, continuation):
    ctx, cont = encode_pair(tok, context, continuation)
    ids = (ctx + cont)[:-1]
    lp = log_softmax(forward(config, weights, ids))
    first = len(ids) - len(cont)
    return sum(lp[first + i, t] for i, t in enumerate(cont))


def argmax(xs):
    return int(np.argmax(np.array(xs)))


# ---------------------------------------------------------------- tiny fixtures vs numpy

ARC_ITEMS = [
    # Choices of very different lengths, so acc (sum) and acc_norm (per character) part ways.
    {"query": "Question: What says the king?", "gold": 2,
     "choices": ["Good my lord", "no", "The queen and the duke of York shall come to the king", "I will"]},
    {"query": "Question: Who comes hither?", "gold": 0,
     "choices": ["a", "The noble lord of the north and all his men of war"]},
    {"query": "Question: Where is the duke?", "gold": 1,
     "choices": ["He is gone to the tower, my lord", "x", "Here", "Away, away, for he is dead"]},
    {"query": "Question: What is thy name?", "gold": 0,
     "choices": ["My name is Richard, and I am the king of all this land", "Ay", "O"]},
]
WINOGRANDE_ITEMS = [
    # Contexts differ per option, the continuation is shared (partial scoring).
    {"context_options": ["The king did love the queen, for the king", "The king did love the queen, for the queen"],
     "continuation": "was fair and good.", "gold": 1},
    {"context_options": ["Richard", "Warwick"], "continuation": "shall be king of England.", "gold": 0},
]
LAMBADA_ITEMS = [{"context": "Now is the winter of our discontent made glorious summer by this sun of", "continuation": "York"}]


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture(scope="module")
def handmade(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval-handmade")
    write_jsonl(root / "arc_easy/arc_easy.llmfoundry.jsonl", ARC_ITEMS)
    write_jsonl(root / "winogrande/winogrande.llmfoundry.jsonl", WINOGRANDE_ITEMS)
    write_jsonl(root / "lambada/lambada_openai.llmfoundry.jsonl", LAMBADA_ITEMS)
    return root


def per_item(model, data, *flags):
    out = run_json("eval", model, "--tasks", "arc_easy,winogrande,lambada", "--data", data, "--per-item", *flags)
    return out["models"][0]["outcomes"]


@pytest.mark.parametrize("name", ["llama-gqa", "qwen3"])
def test_choice_loglikelihoods_equal_numpy_with_and_without_prefix_reuse(tiny, handmade, name):
    folder = tiny / name
    config, weights = load(folder)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    reused = per_item(folder, handmade)
    plain = per_item(folder, handmade, "--no-prefix-reuse")
    requests = {
        "arc_easy": [[(i["query"] + "\nAnswer:", " " + c) for c in i["choices"]] for i in ARC_ITEMS],
        "winogrande": [[(o, " " + i["continuation"]) for o in i["context_options"]] for i in WINOGRANDE_ITEMS],
        "lambada": [[(i["context"], " " + i["continuation"])] for i in LAMBADA_ITEMS],
    }
    for task, items in requests.items():
        for n, choices in enumerate(items):
            expected = [numpy_loglikelihood(config, weights, tok, c, k) for c, k in choices]
            for outcomes in (reused, plain):
                got = [s["log_likelihood"] for s in outcomes[task][n]["scores"]]
                for g, e in zip(got, expected):
                    assert abs(g - e) <= 1e-4 * max(1.0, abs(e)), f"{name} {task} #{n}: {got} vs numpy {expected}"


def test_acc_and_acc_norm_pick_by_sum_and_by_characters(tiny, handmade):
    folder = tiny / "llama-gqa"
    config, weights = load(folder)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    outcomes = per_item(folder, handmade)["arc_easy"]
    disagreements = 0
    for item, got in zip(ARC_ITEMS, outcomes):
        ll = [numpy_loglikelihood(config, weights, tok, item["query"] + "\nAnswer:", " " + c) for c in item["choices"]]
        by_sum = argmax(ll)
        by_char = argmax([x / len(c) for x, c in zip(ll, item["choices"])])
        assert got["acc"] == (by_sum == item["gold"]), (item, ll)
        assert got["acc_norm"] == (by_char == item["gold"]), (item, ll)
        disagreements += by_sum != by_char
    # The items are built so that length normalisation changes the pick at least once.
    assert disagreements >= 1
    result = run_json("eval", folder, "--tasks", "arc_easy", "--data", handmade)["models"][0]["tasks"][0]
    n = len(outcomes)
    acc = sum(o["acc"] for o in outcomes) / n
    assert result["metrics"]["acc"]["value"] == pytest.approx(acc)
    # lm-eval's stderr: sample std / sqrt(n).
    assert result["metrics"]["acc"]["stderr"] == pytest.approx(np.std([o["acc"] for o in outcomes], ddof=1) / math.sqrt(n))


# ---------------------------------------------------------------- prompts on real rows

def capitalize_last_fragment(s):
    head, sep, frag = s.rpartition(". ")
    if sep and frag[:1].islower():
        return head + sep + frag.capitalize()
    return s


def untag(s):
    return re.sub(r"\[.*?\]", "", s)


def hellaswag_items(lines):
    """(context, endings, gold) per SOURCES.md from klosax's 6-line records."""
    for i in range(0, len(lines) - len(lines) % 6, 6):
        yield untag(capitalize_last_fragment(lines[i])), [untag(e) for e in lines[i + 2:i + 6]], int(lines[i + 1])


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def real_rows(tmp_path_factory):
    """A data folder of real rows: the first few of each task plus the rows the fix-ups touch
    (ARC's duplicated choices, HellaSwag's leftover tags), and the expected requests."""
    root = tmp_path_factory.mktemp("eval-real")
    expected = {}

    def mc(context, choices, gold):
        return {"requests": [{"context": context, "continuation": " " + c} for c in choices], "gold": gold,
                "choice_lengths": [len(c) for c in choices]}

    for task, file in [("arc_easy", "arc_easy/arc_easy.llmfoundry.jsonl"),
                       ("arc_challenge", "arc_challenge/arc_challenge.llmfoundry.jsonl")]:
        rows = read_jsonl(EVAL_DATA / file)
        dup = [r for r in rows if len(set(r["choices"])) < len(r["choices"])]
        assert dup, f"{file}: no padded rows found"
        picked = rows[:3] + dup[:2]
        write_jsonl(root / file, picked)
        out = []
        for r in picked:
            choices = list(dict.fromkeys(r["choices"]))
            out.append(mc(r["query"] + "\nAnswer:", choices, choices.index(r["choices"][r["gold"]])))
        expected[task] = out
    rows = read_jsonl(EVAL_DATA / "openbookqa/openbook_qa.llmfoundry.jsonl")[:3]
    write_jsonl(root / "openbookqa/openbook_qa.llmfoundry.jsonl", rows)
    expected["openbookqa"] = [mc(r["query"], r["choices"], r["gold"]) for r in rows]
    rows = read_jsonl(EVAL_DATA / "boolq/boolq.llmfoundry.jsonl")[:3]
    write_jsonl(root / "boolq/boolq.llmfoundry.jsonl", rows)
    expected["boolq"] = [mc(r["query"][len("Passage: "):] + "\nAnswer:", ["no", "yes"], r["gold"]) for r in rows]
    rows = read_jsonl(EVAL_DATA / "winogrande/winogrande.llmfoundry.jsonl")[:3]
    write_jsonl(root / "winogrande/winogrande.llmfoundry.jsonl", rows)
    expected["winogrande"] = [{"requests": [{"context": o, "continuation": " " + r["continuation"]}
                                            for o in r["context_options"]], "gold": r["gold"],
                               "choice_lengths": [len(o) for o in r["context_options"]]} for r in rows]
    rows = read_jsonl(EVAL_DATA / "lambada/lambada_openai.llmfoundry.jsonl")[:3]
    write_jsonl(root / "lambada/lambada_openai.llmfoundry.jsonl", rows)
    expected["lambada"] = [{"requests": [{"context": r["context"], "continuation": " " + r["continuation"]}],
                            "gold": 0, "choice_lengths": [len(r["continuation"])]} for r in rows]
    goals = (EVAL_DATA / "piqa/valid.jsonl").read_text().splitlines()[:3]
    labels = (EVAL_DATA / "piqa/valid-labels.lst").read_text().splitlines()[:3]
    (root / "piqa").mkdir()
    (root / "piqa/valid.jsonl").write_text("\n".join(goals) + "\n")
    (root / "piqa/valid-labels.lst").write_text("\n".join(labels) + "\n")
    expected["piqa"] = [mc(f"Question: {g['goal']}\nAnswer:", [g["sol1"], g["sol2"]], int(lab))
                        for g, lab in zip(map(json.loads, goals), labels)]
    lines = bz2.decompress((EVAL_DATA / "hellaswag/hellaswag_val_full.txt.bz2").read_bytes()).decode().split("\n")
    records = [lines[i:i + 6] for i in range(0, len(lines) - 5, 6)]
    tagged = [r for r in records if any("[" in x for x in r)]
    assert len(tagged) >= 3
    picked = records[:3] + tagged[:4]
    (root / "hellaswag").mkdir()
    # The original layout: the bz2 file, decoded by the tool through bzip2.
    (root / "hellaswag/hellaswag_val_full.txt.bz2").write_bytes(bz2.compress("\n".join(sum(picked, [])).encode() + b"\n"))
    expected["hellaswag"] = [mc(c, e, g) for c, e, g in hellaswag_items(sum(picked, []))]
    # MMLU: two subjects, whole files; 5-shot from dev in file order.
    import csv
    expected["mmlu"] = []
    for subject in ["abstract_algebra", "high_school_us_history"]:
        for split in ["test", "dev"]:
            (root / f"mmlu/{split}").mkdir(parents=True, exist_ok=True)
            src = EVAL_DATA / f"mmlu/{split}/{subject}_{split}.csv"
            (root / f"mmlu/{split}/{src.name}").write_bytes(src.read_bytes())
        parse = lambda split: list(csv.DictReader(open(EVAL_DATA / f"mmlu/{split}/{subject}_{split}.csv", newline="")))
        block = lambda r: (r["question"].strip() + "\n" + "".join(f"{l}. {r[f'choice{i}']}\n" for i, l in enumerate("ABCD"))
                           + "Answer:")
        shots = "".join(block(r) + " " + "ABCD"[int(r["answer"])] + "\n\n" for r in parse("dev")[:5])
        header = f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"
        expected["mmlu"] += [mc(header + shots + block(r), list("ABCD"), int(r["answer"])) for r in parse("test")[:7]]
    return root, expected


def test_requests_follow_sources_md_on_real_rows(smollm2, smollm2_hf, real_rows):
    root, expected = real_rows
    dumped = run_json("eval", smollm2, "--data", root, "--show-requests", 7)
    tok = Tokenizer.from_file(str(smollm2_hf / "tokenizer.json"))
    by_task = {}
    for d in dumped:
        by_task.setdefault(d["task"], []).append(d)
    assert set(by_task) == set(expected)
    for task, items in expected.items():
        got = by_task[task]
        assert len(got) == len(items), task
        for n, (g, e) in enumerate(zip(got, items)):
            assert g["requests"] == e["requests"], f"{task} #{n}"
            assert g["gold"] == e["gold"], f"{task} #{n}"
            if task != "winogrande":
                assert g["choice_lengths"] == e["choice_lengths"], f"{task} #{n}"
            # Token ids: lm-eval's pair encoding with the HF tokenizer.
            for r, ctx, cont in zip(e["requests"], g["context_ids"], g["continuation_ids"]):
                assert (ctx, cont) == encode_pair(tok, r["context"], r["continuation"]), f"{task} #{n}"


def test_shipped_data_equals_the_sources(smollm2):
    """The zstd copies inside the tool give the same requests as the original files."""
    shipped = run_json("eval", smollm2, "--show-requests", 3)
    original = run_json("eval", smollm2, "--data", EVAL_DATA, "--show-requests", 3)
    assert shipped == original
    assert {d["task"] for d in shipped} == {"arc_easy", "arc_challenge", "hellaswag", "openbookqa", "piqa",
                                            "winogrande", "boolq", "lambada", "mmlu"}


def test_bad_data_file_is_one_line_naming_it(smollm2, tmp_path):
    (tmp_path / "boolq").mkdir()
    (tmp_path / "boolq/boolq.llmfoundry.jsonl").write_text('{"query": "Passage: x\\nQuestion: y?", "gold": 0}\n')
    proc = run("eval", smollm2, "--tasks", "boolq", "--data", tmp_path, check=False)
    assert proc.returncode != 0
    assert "boolq.llmfoundry.jsonl:1:" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


# ---------------------------------------------------------------- llama.cpp as a peer

@pytest.fixture(scope="module")
def smollm2_f32(smollm2_hf, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval-f32") / "smollm2.f32.gguf"
    run("export", smollm2_hf, "-o", out, "--dtype", "f32")
    return out


def llama_hellaswag_item(gguf, path):
    exe = LLAMA_BIN / "llama-perplexity"
    proc = subprocess.run([str(exe), "-m", str(gguf), "-f", str(path), "--hellaswag", "--hellaswag-tasks", "1",
                           "-t", "1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.search(r"^1\t([0-9.]+)%", proc.stdout + proc.stderr, re.M)
    assert found, (proc.stdout + proc.stderr)[-2000:]
    return float(found.group(1)) > 50


def test_hellaswag_agrees_with_llama_perplexity(smollm2_f32, tmp_path):
    """llama-perplexity --hellaswag draws tasks at random (with replacement) from its file,
    so each item runs alone (a one-item file) to get the same items in the same order.
    Both tools read the same text: the first N items with SOURCES.md's fix-ups applied.

    Scoring differs: llama.cpp averages log-probs over the tokens after the common prefix
    of the four tokenized sequences (per-token normalisation); lm-eval's acc_norm divides
    the continuation's summed log-prob by its length in characters. The like-for-like
    check rebuilds llama.cpp's rule from our per-token log-probs and must give the same
    verdict item by item. Our lm-eval acc_norm on the same items is printed beside it but
    not held to llama.cpp's number: the two normalisations pick different endings on a few
    percent of items (first 200: llama.cpp 42.0, ours per token 42.0, lm-eval acc_norm 47.0)."""
    exe = LLAMA_BIN / "llama-perplexity"
    assert exe.exists(), f"{exe} missing: run scripts/build-llama-cpp.sh"
    lines = bz2.decompress((EVAL_DATA / "hellaswag/hellaswag_val_full.txt.bz2").read_bytes()).decode().split("\n")
    items = list(hellaswag_items(lines[:6 * HELLASWAG_ITEMS]))
    (tmp_path / "hellaswag").mkdir()
    text = "".join(f"{c}\n{g}\n" + "".join(e + "\n" for e in ends) for c, ends, g in items)
    (tmp_path / "hellaswag/hellaswag_val_full.txt").write_text(text)
    for n, (c, ends, g) in enumerate(items):
        (tmp_path / f"item{n}.txt").write_text(f"{c}\n{g}\n" + "".join(e + "\n" for e in ends))
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        llama = list(pool.map(lambda n: llama_hellaswag_item(smollm2_f32, tmp_path / f"item{n}.txt"), range(len(items))))

    out = run_json("eval", smollm2_f32, "--tasks", "hellaswag", "--data", tmp_path, "--per-item")["models"][0]
    outcomes = out["outcomes"]["hellaswag"]
    dumps = run_json("eval", smollm2_f32, "--tasks", "hellaswag", "--data", tmp_path, "--show-requests", len(items))
    ours_token_norm = []
    for o, d in zip(outcomes, dumps):
        full = [c + k for c, k in zip(d["context_ids"], d["continuation_ids"])]
        common = 0
        while all(len(f) > common for f in full) and len({f[common] for f in full}) == 1:
            common += 1
        means = []
        for s, f in zip(o["scores"], full):
            start = max(common, len(f) - len(s["token_log_probs"])) - (len(f) - len(s["token_log_probs"]))
            lps = s["token_log_probs"][start:]
            means.append(sum(lps) / len(lps))
        ours_token_norm.append(argmax(means) == o["gold"])
    n = len(items)
    llama_acc = 100 * sum(llama) / n
    token_acc = 100 * sum(ours_token_norm) / n
    acc_norm = 100 * out["tasks"][0]["metrics"]["acc_norm"]["value"]
    same = sum(a == b for a, b in zip(llama, ours_token_norm))
    print(f"\nhellaswag first {n}: llama.cpp {llama_acc:.1f}  ours token-normalised {token_acc:.1f} "
          f"(same verdict on {same}/{n})  ours lm-eval acc_norm {acc_norm:.1f}")
    assert abs(token_acc - llama_acc) <= 1.0
    # Different verdicts only where two endings tie within float noise (none seen so far).
    assert same >= n - max(1, n // 100)
