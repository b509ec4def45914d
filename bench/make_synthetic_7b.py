#!/usr/bin/env python3
"""Writes a synthetic LLaMA-shaped checkpoint with random bf16 weights, as sharded
safetensors with an index, and pre-tokenized calibration windows, for the scale benchmark
(bench/scale7b.sh):

    make_synthetic_7b.py OUT [llama2-7b|llama3-8b] [NSAMPLES SEQLEN]

llama2-7b: 32 layers, hidden 4096, FFN 11008, 32 heads (MHA), vocab 32000, ~13.5 GB.
llama3-8b: 32 layers, hidden 4096, FFN 14336, 32 heads over 8 KV heads (GQA), vocab
128256, ~16 GB. Windows default to 8 × 512.

bf16 values are the top halves of f32 normals (σ 0.02; norms near 1). numpy has no
bfloat16, so the files are written with the safetensors layout directly.
"""
import json
import struct
import sys
from pathlib import Path

import numpy as np

SHAPES = {
    # hidden, FFN, layers, vocab, heads, KV heads, RoPE theta, context
    "llama2-7b": (4096, 11008, 32, 32000, 32, 32, 10000.0, 4096),
    "llama3-8b": (4096, 14336, 32, 128256, 32, 8, 500000.0, 8192),
}
SHARD_BYTES = 2_000_000_000
SHAPE = sys.argv[2] if len(sys.argv) > 2 else "llama2-7b"
H, F, L, V, HEADS, KV_HEADS, THETA, CONTEXT = SHAPES[SHAPE]
KV = H // HEADS * KV_HEADS


def tensors():
    yield "model.embed_tokens.weight", (V, H), 0.02
    for l in range(L):
        p = f"model.layers.{l}."
        yield p + "input_layernorm.weight", (H,), None
        yield p + "self_attn.q_proj.weight", (H, H), 0.02
        yield p + "self_attn.k_proj.weight", (KV, H), 0.02
        yield p + "self_attn.v_proj.weight", (KV, H), 0.02
        yield p + "self_attn.o_proj.weight", (H, H), 0.02
        yield p + "post_attention_layernorm.weight", (H,), None
        yield p + "mlp.gate_proj.weight", (F, H), 0.02
        yield p + "mlp.up_proj.weight", (F, H), 0.02
        yield p + "mlp.down_proj.weight", (H, F), 0.02
    yield "model.norm.weight", (H,), None
    yield "lm_head.weight", (V, H), 0.02


def bf16(shape, scale, rng):
    x = rng.standard_normal(shape, dtype=np.float32)
    x = 1 + 0.05 * x if scale is None else x * scale
    return (x.view(np.uint32) >> 16).astype(np.uint16)


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    specs = list(tensors())
    shards, current, size = [], [], 0
    for name, shape, scale in specs:
        n = int(np.prod(shape)) * 2
        if current and size + n > SHARD_BYTES:
            shards.append(current)
            current, size = [], 0
        current.append((name, shape, scale))
        size += n
    shards.append(current)
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        header, offset = {"__metadata__": {"format": "pt"}}, 0
        for name, shape, _ in shard:
            n = int(np.prod(shape)) * 2
            header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
            offset += n
            weight_map[name] = fname
        total += offset
        text = json.dumps(header).encode()
        text += b" " * ((8 - len(text) % 8) % 8)
        with open(out / fname, "wb") as f:
            f.write(struct.pack("<Q", len(text)) + text)
            for name, shape, scale in shard:
                f.write(bf16(shape, scale, rng).tobytes())
        print(f"wrote {fname}", file=sys.stderr)
    (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    (out / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": H, "intermediate_size": F,
        "num_hidden_layers": L, "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS, "rms_norm_eps": 1e-5,
        "rope_theta": THETA, "max_position_embeddings": CONTEXT, "vocab_size": V, "tie_word_embeddings": False,
        "torch_dtype": "bfloat16", "bos_token_id": 1, "eos_token_id": 2}, indent=2))
    nsamples, seqlen = (int(sys.argv[3]), int(sys.argv[4])) if len(sys.argv) > 4 else (8, 512)
    windows = rng.integers(3, V, size=(nsamples, seqlen)).tolist()
    (out / "calibration-tokens.json").write_text(json.dumps(windows))


if __name__ == "__main__":
    main()
