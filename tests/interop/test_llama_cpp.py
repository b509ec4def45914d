"""llama.cpp as a peer: our GGUF exports load and run in llama.cpp's own tools, and
llama.cpp's tokens, logits and perplexities equal ours.

The tools are built from the llama.cpp source inside the PyPI sdist llama-cpp-python by
scripts/build-llama-cpp.sh (which scripts/test.sh runs first); a missing build is a
failure, not a skip. llama-dump-logits is our 60-line program against libllama's public
API (scripts/llama-cpp/dump_logits.cpp): it only prints what llama.cpp computes.
"""
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader
from safetensors.numpy import load_file

from conftest import REPO, SHARED, TINY_MODELS, run, run_json

LLAMA_BIN = Path(os.environ.get("CKPT_LLAMA_CPP_BIN", REPO / ".cache/llama-cpp/bin"))
WIKI_TEST = SHARED / "data/wikitext-2-raw/wiki.test.raw"
THREADS = str(os.cpu_count() or 2)
# Enough windows for a stable comparison in CI time; bench/llama-cpp.sh runs the whole file.
CHUNKS = 16
PROMPT = "The capital of France is"


def llama(tool, *args, timeout=1800):
    exe = LLAMA_BIN / tool
    assert exe.exists(), f"{exe} missing: run scripts/build-llama-cpp.sh"
    proc = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{tool} {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc


def llama_perplexity(model, chunks=CHUNKS):
    proc = llama("llama-perplexity", "-m", model, "-f", WIKI_TEST, "-c", 512, "-b", 512, "--chunks", chunks,
                 "-t", THREADS)
    found = re.search(r"Final estimate: PPL = ([0-9.]+)", proc.stdout + proc.stderr)
    assert found, f"no PPL in llama-perplexity output:\n{proc.stderr[-2000:]}"
    return float(found.group(1))


def our_perplexity(model, chunks=CHUNKS):
    return run_json("ppl", model, "--text", WIKI_TEST, "--ctx", 512, "--windows", chunks,
                    "--protocol", "llama.cpp")["perplexity"]


def metadata(path):
    reader = GGUFReader(str(path))
    out = {}
    for field in reader.fields.values():
        if not field.types:
            continue
        if field.types[0].name == "STRING":
            out[field.name] = bytes(field.parts[-1]).decode()
        elif field.types[0].name == "ARRAY" and len(field.types) > 1 and field.types[1].name != "STRING":
            out[field.name] = [int(field.parts[i][0]) for i in field.data]
        elif field.types[0].name != "ARRAY":
            out[field.name] = field.parts[-1][0].item()
    return out


@pytest.fixture(scope="session")
def smollm2_f32_gguf(smollm2_hf, tmp_path_factory):
    """SmolLM2 GGUF -> HF (f32) -> GGUF F32: tokenizer metadata rebuilt from tokenizer.json."""
    out = tmp_path_factory.mktemp("rt") / "smollm2.f32.gguf"
    run("export", smollm2_hf, "-o", out, "--dtype", "f32")
    return out


@pytest.fixture(scope="session")
def pruned21(smollm2, tmp_path_factory):
    """A 21-layer CoMe-pruned SmolLM2 (small calibration to fit CI time), with F16 and Q8_0 exports."""
    root = tmp_path_factory.mktemp("pruned")
    folder = root / "smollm2-21"
    run("prune", smollm2, "--method", "come", "--target-layers", 21, "--wo-repeat", "--nsamples", 8,
        "--seqlen", 256, "-o", folder)
    exports = {}
    for dtype in ["f16", "q8_0"]:
        exports[dtype] = root / f"smollm2-21.{dtype}.gguf"
        run("export", folder, "-o", exports[dtype], "--dtype", dtype)
    return folder, exports


def test_llama_tokenize_equals_our_ids_on_wiki_test(smollm2_f32_gguf, smollm2_hf):
    theirs = llama("llama-tokenize", "-m", smollm2_f32_gguf, "-f", WIKI_TEST, "--ids", "--log-disable",
                   "--no-bos").stdout
    theirs = [int(x) for x in theirs.strip().strip("[]").split(",") if x.strip()]
    ours = run_json("tokenize", smollm2_hf, "--text", WIKI_TEST)["ids"]
    assert len(ours) > 300_000
    first_difference = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), None)
    assert first_difference is None and len(ours) == len(theirs), (len(ours), len(theirs), first_difference)


def test_round_trip_f32_perplexity_matches_llama_cpp(smollm2_f32_gguf):
    meta = metadata(smollm2_f32_gguf)
    assert meta["llama.block_count"] == 30 and meta["general.file_type"] == 0
    theirs, ours = llama_perplexity(smollm2_f32_gguf), our_perplexity(smollm2_f32_gguf)
    print(f"round-trip F32, {CHUNKS} chunks of 512: llama.cpp {theirs:.4f}, ours {ours:.4f}")
    assert abs(ours - theirs) <= 0.005 * theirs, (ours, theirs)


def test_pruned_exports_load_run_and_agree(pruned21):
    folder, exports = pruned21
    for dtype, path in exports.items():
        meta = metadata(path)
        assert meta["llama.block_count"] == 21
        assert meta["ckpt_surgeon.surgery.method"] == "come"
        assert meta["ckpt_surgeon.surgery.source_layers"] == 30
        first, last = meta["ckpt_surgeon.surgery.layer_first"], meta["ckpt_surgeon.surgery.layer_last"]
        assert len(first) == len(last) == 21 and first[0] == 0 and last[-1] == 29
        assert all(b == a + 1 for a, b in zip(last, first[1:])), "layer ranges must tile 0..29"
    theirs, ours = llama_perplexity(exports["f16"]), our_perplexity(exports["f16"])
    q8 = llama_perplexity(exports["q8_0"])
    print(f"21-layer CoMe, {CHUNKS} chunks: F16 llama.cpp {theirs:.3f} ours {ours:.3f}; Q8_0 llama.cpp {q8:.3f}")
    assert abs(ours - theirs) <= 0.01 * theirs, (ours, theirs)
    assert abs(q8 - theirs) <= 0.05 * theirs, (q8, theirs)


def test_pruned_f16_generates_the_same_text_in_llama_cpp(pruned21):
    _, exports = pruned21
    out = llama("llama-simple", "-m", exports["f16"], "-n", 16, PROMPT).stdout
    assert out.startswith(PROMPT), out
    theirs = out[len(PROMPT):]
    ours = run("generate", exports["f16"], "--prompt", PROMPT, "-n", 16).stdout
    print(f"llama.cpp: {theirs!r}\nours:      {ours!r}")
    words = re.findall(r"[A-Za-z]{2,}", theirs)
    assert len(words) >= 4 and sum(map(len, words)) >= 0.5 * len(theirs.strip()), f"not readable: {theirs!r}"
    # Greedy decoding of the same weights: the first words agree (F16 matmuls round
    # differently in ggml, so a near-tie later on may still go another way).
    assert ours.split()[:4] == theirs.split()[:4], (ours, theirs)


@pytest.mark.parametrize("name", TINY_MODELS)
def test_tiny_exports_give_llama_cpp_our_logits(tiny, tmp_path, name):
    """Qwen2 (q/k/v biases), Qwen3 (q/k norms), LLaMA MHA, and LLaMA GQA with llama3 rope
    scaling (rope_freqs tensor): llama.cpp's logits equal our forward's."""
    gguf = tmp_path / f"{name}.gguf"
    run("export", tiny / name, "-o", gguf, "--dtype", "f32")
    ids = [3, 17, 250, 99, 1, 42, 7, 300, 5, 64, 128, 11]
    lines = llama("llama-dump-logits", gguf, *ids).stdout.strip().splitlines()
    theirs = np.array([[float(x) for x in line.split()] for line in lines])
    out = tmp_path / "ours.safetensors"
    run("logits", tiny / name, "--ids", " ".join(map(str, ids)), "-o", out)
    ours = load_file(str(out))["logits"].astype(np.float64)
    assert theirs.shape == ours.shape
    scale = np.abs(ours).max()
    err = np.abs(theirs - ours).max() / scale
    print(f"{name}: max |llama.cpp - ours| / max|logit| = {err:.2e}")
    # f32 weights, f32 KV cache, no flash attention: only summation order differs
    # (measured about 5e-7).
    assert err <= 1e-5, err
    # And our own forward reads the export back to the same logits (llama3 scaling from
    # the rope_freqs tensor, since GGUF has no keys for it).
    run("logits", gguf, "--ids", " ".join(map(str, ids)), "-o", out)
    assert np.abs(load_file(str(out))["logits"] - ours).max() <= 1e-5 * scale
    if name == "llama-gqa":
        assert "rope_freqs.weight" in {t.name for t in GGUFReader(str(gguf)).tensors}
