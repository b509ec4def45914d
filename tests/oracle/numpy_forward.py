"""An independent forward pass in numpy (float64), written from the architecture
definitions in transformers (LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM).
It shares no code with ckpt-surgeon and is the reference its logits are checked against.
"""
import json
import math
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file


def load(folder):
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    weights = {}
    for f in sorted(folder.glob("*.safetensors")):
        weights.update({k: v.astype(np.float64) for k, v in load_file(f).items()})
    return config, weights


def inv_freq(config):
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    base = config.get("rope_theta", 10000.0)
    freq = 1.0 / (base ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    scaling = config.get("rope_scaling") or {}
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind == "llama3":
        factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
        old = scaling["original_max_position_embeddings"]
        wavelen = 2 * math.pi / freq
        scaled = np.where(wavelen > old / low, freq / factor, freq)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < old / high) & ~(wavelen > old / low)
        freq = np.where(medium, smoothed, scaled)
    elif kind == "linear":
        freq = freq / scaling["factor"]
    return freq


def rms_norm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def rotate(x, cos, sin):
    half = x.shape[-1] // 2
    rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rotated * sin


def forward(config, w, ids):
    t = len(ids)
    h_dim = config["hidden_size"]
    n_heads = config["num_attention_heads"]
    n_kv = config.get("num_key_value_heads", n_heads)
    head_dim = config.get("head_dim") or h_dim // n_heads
    eps = config["rms_norm_eps"]
    angles = np.outer(np.arange(t, dtype=np.float64), inv_freq(config))
    cos = np.cos(np.concatenate([angles, angles], -1))[None]
    sin = np.sin(np.concatenate([angles, angles], -1))[None]
    mask = np.triu(np.full((t, t), -np.inf), 1)
    x = w["model.embed_tokens.weight"][ids]
    for layer in range(config["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        lin = lambda name, v: v @ w[p + name + ".weight"].T + w.get(p + name + ".bias", 0)
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = lin("self_attn.q_proj", h).reshape(t, n_heads, head_dim).transpose(1, 0, 2)
        k = lin("self_attn.k_proj", h).reshape(t, n_kv, head_dim).transpose(1, 0, 2)
        v = lin("self_attn.v_proj", h).reshape(t, n_kv, head_dim).transpose(1, 0, 2)
        if p + "self_attn.q_norm.weight" in w:
            q = rms_norm(q, w[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, w[p + "self_attn.k_norm.weight"], eps)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        k = np.repeat(k, n_heads // n_kv, axis=0)
        v = np.repeat(v, n_heads // n_kv, axis=0)
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(head_dim) + mask
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        attn = (scores @ v).transpose(1, 0, 2).reshape(t, n_heads * head_dim)
        x = x + lin("self_attn.o_proj", attn)
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = lin("mlp.gate_proj", h)
        x = x + lin("mlp.down_proj", gate / (1 + np.exp(-gate)) * lin("mlp.up_proj", h))
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if config.get("tie_word_embeddings") else w["lm_head.weight"]
    return x @ head.T


def calibration_perplexity(config, w, windows):
    """exp(mean NLL) of every next token of every window (how pruning scores candidates)."""
    nll, count = 0.0, 0
    for ids in windows:
        logits = forward(config, w, ids).astype(np.float64)
        logp = logits - logits.max(-1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
        nll -= sum(logp[j, ids[j + 1]] for j in range(len(ids) - 1))
        count += len(ids) - 1
    return math.exp(nll / count)
