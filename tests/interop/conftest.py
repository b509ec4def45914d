"""Shared paths and helpers for the interop suite.

Every test here runs the real `ckpt-surgeon` binary and checks what it reads or writes
with independent implementations: safetensors, gguf-py, tokenizers, numpy, xxhash.
Nothing is skipped: a missing binary, fixture or model is a failure.
"""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("CKPT_SHARED", REPO.parent / "shared"))
CLI = Path(os.environ.get("CKPT_SURGEON", REPO / ".build/release/ckpt-surgeon")).resolve()
TINY = REPO / "fixtures/tiny"
MALFORMED = REPO / "fixtures/malformed"
SMOLLM2 = Path(os.environ.get("CKPT_MODEL_GGUF", REPO / "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
TINY_MODELS = ["llama-mha", "llama-gqa", "qwen2", "qwen3"]


def run(*args, check=True, **kwargs):
    """Runs the CLI; returns the CompletedProcess (text mode)."""
    assert CLI.exists(), f"{CLI} is not built (scripts/setup.sh builds it)"
    proc = subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"ckpt-surgeon {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def tree_digest(path):
    """Names, sizes, mtimes and bytes of everything under a folder (or of one file)."""
    import hashlib
    h = hashlib.sha256()
    items = sorted(path.rglob("*")) if path.is_dir() else [path]
    for p in items:
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(path) if path.is_dir() else p.name}:{st.st_mtime_ns}:{st.st_size}".encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def run_json(*args):
    return json.loads(run(*args, "--json").stdout)


@pytest.fixture(scope="session")
def tiny():
    assert (TINY / "llama-mha/config.json").exists(), "fixtures/tiny missing: run scripts/fixtures/make_tiny_models.py"
    return TINY


@pytest.fixture(scope="session")
def smollm2():
    assert SMOLLM2.exists(), f"{SMOLLM2} missing: run scripts/fetch-model.sh"
    return SMOLLM2


@pytest.fixture(scope="session")
def smollm2_hf(smollm2, tmp_path_factory):
    """SmolLM2 converted to an HF folder at f32 (exact), shared by several tests."""
    out = tmp_path_factory.mktemp("smollm2") / "hf"
    run("convert", smollm2, "-o", out)
    return out


def hf_name(gguf_name):
    """HF name of a GGUF tensor name, written out independently of the tool's table."""
    fixed = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
             "output.weight": "lm_head.weight"}
    if gguf_name in fixed:
        return fixed[gguf_name]
    parts = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
             "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "attn_q_norm": "self_attn.q_norm",
             "attn_k_norm": "self_attn.k_norm", "ffn_norm": "post_attention_layernorm",
             "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
    _, layer, part, suffix = gguf_name.split(".")
    return f"model.layers.{layer}.{parts[part]}.{suffix}"


def llama_permute(w, n_head):
    """convert_hf_to_gguf.py's LlamaModel.permute (HF rows -> GGUF rows)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama_unpermute(w, n_head):
    """Inverse of llama_permute (GGUF rows -> HF rows)."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def our_logits(model, ids, path, tmp_path):
    """Our `logits --path PATH` of `ids` (streaming, whole or cached), as float64."""
    from safetensors.numpy import load_file
    out = tmp_path / f"logits-{path}.safetensors"
    run("logits", model, "--ids", " ".join(map(str, ids)), "-o", out, "--path", path)
    t = load_file(out)
    assert t["ids"].tolist() == list(ids)
    return t["logits"].astype(np.float64)


def assert_close(ours, ref, what):
    """Logits within 1e-3 × max|ref|; returns the relative error."""
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} != {ref.shape}"
    err = np.abs(ours - ref).max()
    bound = 1e-3 * np.abs(ref).max()
    assert err <= bound, f"{what}: max |Δlogit| {err:.3g} > {bound:.3g}"
    return err / np.abs(ref).max()


def relative_change(a, ref):
    return np.abs(a - ref).max() / np.abs(ref).max()
