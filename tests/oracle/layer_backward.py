"""One decoder layer's forward and hand-written backward in numpy (float64), for every
family ckpt-surgeon supports, plus the distillation losses of SPEC §7 and their gradients.

Written from the architecture definitions in transformers (LlamaDecoderLayer,
Qwen2/Qwen3DecoderLayer, Gemma2DecoderLayer, Phi3DecoderLayer) and the calculus of each
step; it shares no code with the Swift sources. `check(folder, layer)` compares the
backward with central finite differences of the forward, so the oracle checks itself
before ckpt-surgeon's gradients are compared with it.

Parameters are keyed by the HF names after "model.layers.N." (Phi-3's fused qkv_proj and
gate_up_proj stay fused; their gradients are split into the q/k/v and gate/up parts).
"""
import math

import numpy as np

from oracle import gemma2_reference, numpy_forward, phi3_reference


# ----------------------------------------------------------------------------
# Family facts


def spec(config, layer, t):
    """Everything the layer's math depends on, for sequences of t tokens."""
    kind = config.get("model_type", "llama")
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    kv = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or hidden // heads
    s = dict(kind=kind, hidden=hidden, heads=heads, kv=kv, head_dim=head_dim, offset=0.0, act="silu",
             scale=head_dim ** -0.5, cap=None, window=None, eps=config.get("rms_norm_eps", 1e-6))
    positions = np.arange(t, dtype=np.float64)
    if kind == "gemma2":
        get = lambda k: gemma2_reference._get(config, k)
        s.update(offset=1.0, act="gelu_tanh", scale=get("query_pre_attn_scalar") ** -0.5,
                 cap=get("attn_logit_softcapping"), eps=get("rms_norm_eps"),
                 window=get("sliding_window") if gemma2_reference.is_sliding(config, layer) else None)
        freqs = 1.0 / (gemma2_reference.rope_theta(config) ** (np.arange(0, head_dim, 2) / head_dim))
        factor = 1.0
    elif kind == "phi3":
        s.update(eps=phi3_reference._get(config, "rms_norm_eps"), window=phi3_reference._get(config, "sliding_window"))
        freqs = phi3_reference.inv_freq(config, t)
        factor = phi3_reference.attention_factor(config)
    else:
        if kind == "mistral":
            s["window"] = config.get("sliding_window")
        freqs = numpy_forward.inv_freq(config)
        factor = 1.0
    angles = np.outer(positions, freqs)
    s["cos"] = np.cos(np.concatenate([angles, angles], -1)) * factor  # [T, d]
    s["sin"] = np.sin(np.concatenate([angles, angles], -1)) * factor
    mask = np.arange(t)[None, :] <= np.arange(t)[:, None]
    if s["window"] is not None:
        mask &= (np.arange(t)[:, None] - np.arange(t)[None, :]) < s["window"]
    s["mask"] = mask
    return s


def split_params(s, lw):
    """The layer's parameters under one set of names: q, k, v, o, gate, up, down (+ biases),
    the norms, and Phi-3's fused matrices split into parts."""
    p = dict(lw)
    if "self_attn.qkv_proj.weight" in p:
        qkv = p.pop("self_attn.qkv_proj.weight")
        qs, ks = s["heads"] * s["head_dim"], s["kv"] * s["head_dim"]
        p["self_attn.q_proj.weight"], p["self_attn.k_proj.weight"], p["self_attn.v_proj.weight"] = (
            qkv[:qs], qkv[qs:qs + ks], qkv[qs + ks:])
    if "mlp.gate_up_proj.weight" in p:
        gu = p.pop("mlp.gate_up_proj.weight")
        half = gu.shape[0] // 2
        p["mlp.gate_proj.weight"], p["mlp.up_proj.weight"] = gu[:half], gu[half:]
    return p


def norm_names(s):
    """(attention input norm, attention output norm or None, MLP input norm, MLP output norm or None)."""
    if s["kind"] == "gemma2":
        return ("input_layernorm.weight", "post_attention_layernorm.weight",
                "pre_feedforward_layernorm.weight", "post_feedforward_layernorm.weight")
    return "input_layernorm.weight", None, "post_attention_layernorm.weight", None


# ----------------------------------------------------------------------------
# Pieces: forward returns (y, cache); backward(dy, cache) returns dx (and parameter grads)


def rms_forward(x, w, s, offset=None):
    off = s["offset"] if offset is None else offset
    r = np.sqrt((x * x).mean(-1, keepdims=True) + s["eps"])
    xhat = x / r
    return xhat * (w + off), (xhat, r, w + off)


def rms_backward(dy, cache):
    xhat, r, wo = cache
    g = dy * wo
    dx = (g - xhat * (g * xhat).mean(-1, keepdims=True)) / r
    dw = (dy * xhat).reshape(-1, xhat.shape[-1]).sum(0)
    return dx, dw


def rope_forward(x, s):
    """x [..., T, d], HF rotate_half pairing (i, i + d/2)."""
    half = x.shape[-1] // 2
    rot = np.concatenate([-x[..., half:], x[..., :half]], -1)
    return x * s["cos"] + rot * s["sin"]


def rope_backward(dy, s):
    # y = x·cos + R(x)·sin with R(x) = [-x2, x1]; Rᵀ(u) = [u2, -u1].
    half = dy.shape[-1] // 2
    u = dy * s["sin"]
    return dy * s["cos"] + np.concatenate([u[..., half:], -u[..., :half]], -1)


def act_forward(g, s):
    if s["act"] == "silu":
        return g / (1 + np.exp(-g))
    return gemma2_reference.gelu_tanh(g)


def act_derivative(g, s):
    if s["act"] == "silu":
        sig = 1 / (1 + np.exp(-g))
        return sig + g * sig * (1 - sig)
    c = math.sqrt(2 / math.pi)
    u = c * (g + 0.044715 * g ** 3)
    t = np.tanh(u)
    return 0.5 * (1 + t) + 0.5 * g * (1 - t * t) * c * (1 + 3 * 0.044715 * g * g)


# ----------------------------------------------------------------------------
# The layer


def forward(s, p, x):
    """x [S, T, hidden] -> (output, cache)."""
    S, T, H = x.shape
    nh, nkv, d = s["heads"], s["kv"], s["head_dim"]
    in_norm, attn_post, mlp_norm, mlp_post = norm_names(s)
    lin = lambda name, v: v @ p[name + ".weight"].T + p.get(name + ".bias", 0)
    c = {"x": x}
    n1, c["n1"] = rms_forward(x, p[in_norm], s)
    q = lin("self_attn.q_proj", n1).reshape(S, T, nh, d).transpose(0, 2, 1, 3)
    k = lin("self_attn.k_proj", n1).reshape(S, T, nkv, d).transpose(0, 2, 1, 3)
    v = lin("self_attn.v_proj", n1).reshape(S, T, nkv, d).transpose(0, 2, 1, 3)
    c["n1_out"] = n1
    if "self_attn.q_norm.weight" in p:
        q, c["qn"] = rms_forward(q, p["self_attn.q_norm.weight"], s, offset=0.0)
        k, c["kn"] = rms_forward(k, p["self_attn.k_norm.weight"], s, offset=0.0)
    q, k = rope_forward(q, s), rope_forward(k, s)
    kv_of = np.arange(nh) // (nh // nkv)
    kr, vr = k[:, kv_of], v[:, kv_of]
    scores = q @ kr.transpose(0, 1, 3, 2) * s["scale"]
    if s["cap"] is not None:
        scores = np.tanh(scores / s["cap"]) * s["cap"]
    c["capped"] = scores
    scores = np.where(s["mask"], scores, -np.inf)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    a = (probs @ vr).transpose(0, 2, 1, 3).reshape(S, T, nh * d)
    c.update(q=q, kr=kr, vr=vr, probs=probs, a=a, kv_of=kv_of)
    o = lin("self_attn.o_proj", a)
    if attn_post:
        o, c["attn_post"] = rms_forward(o, p[attn_post], s)
    h = x + o
    n2, c["n2"] = rms_forward(h, p[mlp_norm], s)
    gate, up = lin("mlp.gate_proj", n2), lin("mlp.up_proj", n2)
    mid = act_forward(gate, s) * up
    m = lin("mlp.down_proj", mid)
    if mlp_post:
        m, c["mlp_post"] = rms_forward(m, p[mlp_post], s)
    c.update(n2_out=n2, gate=gate, up=up, mid=mid)
    return h + m, c


def backward(s, p, c, dy):
    """dL/d input and dL/d every parameter, from dL/d output."""
    S, T, H = dy.shape
    nh, nkv, d = s["heads"], s["kv"], s["head_dim"]
    in_norm, attn_post, mlp_norm, mlp_post = norm_names(s)
    g = {}

    def lin_back(name, dout, inp):
        g[name + ".weight"] = dout.reshape(-1, dout.shape[-1]).T @ inp.reshape(-1, inp.shape[-1])
        if name + ".bias" in p:
            g[name + ".bias"] = dout.reshape(-1, dout.shape[-1]).sum(0)
        return dout @ p[name + ".weight"]

    # MLP block
    dm = dy
    if mlp_post:
        dm, g[mlp_post] = rms_backward(dy, c["mlp_post"])
    dmid = lin_back("mlp.down_proj", dm, c["mid"])
    dgate = dmid * c["up"] * act_derivative(c["gate"], s)
    dup = dmid * act_forward(c["gate"], s)
    dn2 = lin_back("mlp.gate_proj", dgate, c["n2_out"]) + lin_back("mlp.up_proj", dup, c["n2_out"])
    dh_norm, g[mlp_norm] = rms_backward(dn2, c["n2"])
    dh = dy + dh_norm
    # attention block
    do = dh
    if attn_post:
        do, g[attn_post] = rms_backward(dh, c["attn_post"])
    da = lin_back("self_attn.o_proj", do, c["a"]).reshape(S, T, nh, d).transpose(0, 2, 1, 3)
    probs = c["probs"]
    dprobs = da @ c["vr"].transpose(0, 1, 3, 2)
    dvr = probs.transpose(0, 1, 3, 2) @ da
    dscores = probs * (dprobs - (dprobs * probs).sum(-1, keepdims=True))
    if s["cap"] is not None:
        dscores = dscores * (1 - (c["capped"] / s["cap"]) ** 2)
    dscores = np.where(s["mask"], dscores, 0.0) * s["scale"]
    dq = dscores @ c["kr"]
    dkr = dscores.transpose(0, 1, 3, 2) @ c["q"]
    dk = np.zeros((S, nkv, T, d))
    dv = np.zeros((S, nkv, T, d))
    for h, kvh in enumerate(c["kv_of"]):
        dk[:, kvh] += dkr[:, h]
        dv[:, kvh] += dvr[:, h]
    dq, dk = rope_backward(dq, s), rope_backward(dk, s)
    if "self_attn.q_norm.weight" in p:
        dq, g["self_attn.q_norm.weight"] = rms_backward(dq, c["qn"])
        dk, g["self_attn.k_norm.weight"] = rms_backward(dk, c["kn"])
    flat = lambda t: t.transpose(0, 2, 1, 3).reshape(S, T, -1)
    dn1 = (lin_back("self_attn.q_proj", flat(dq), c["n1_out"]) + lin_back("self_attn.k_proj", flat(dk), c["n1_out"])
           + lin_back("self_attn.v_proj", flat(dv), c["n1_out"]))
    dx_norm, g[in_norm] = rms_backward(dn1, c["n1"])
    return dh + dx_norm, g


# ----------------------------------------------------------------------------
# Losses (SPEC §7): mean over tokens


def _log_softmax(x):
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def loss(kind, student, teacher):
    """(mean loss, dL/d student)."""
    rows = student.shape[0] * student.shape[1] if student.ndim == 3 else student.shape[0]
    if kind == "mse":
        diff = student - teacher
        return (diff ** 2).mean(-1).sum() / rows, 2 * diff / student.shape[-1] / rows
    lp, lq = _log_softmax(teacher), _log_softmax(student)
    pp, qq = np.exp(lp), np.exp(lq)
    per_token = ((pp - qq) * (lp - lq)).sum(-1)
    # KL(p‖q) + KL(q‖p) in the student's logits: (q − p) + q ⊙ (log q − log p − KL(q‖p)).
    kl_qp = (qq * (lq - lp)).sum(-1, keepdims=True)
    grad = (qq - pp) + qq * (lq - lp - kl_qp)
    return per_token.sum() / rows, grad / rows


def loss_and_gradients(config, lw, layer, x, target, kind="kl"):
    s = spec(config, layer, x.shape[1])
    p = split_params(s, lw)
    out, cache = forward(s, p, x)
    value, dout = loss(kind, out, target)
    dx, grads = backward(s, p, cache, dout)
    return value, dx, grads, s, p


def finite_differences(config, p, s, x, target, name, indices, kind="kl", h=1e-5):
    """Central differences of the loss in parameter `name` at flat `indices` (or in x for name 'input')."""
    out = []
    for i in indices:
        def value(delta):
            if name == "input":
                xx = x.copy().reshape(-1)
                xx[i] += delta
                y, _ = forward(s, p, xx.reshape(x.shape))
            else:
                pp = dict(p)
                w = p[name].copy().reshape(-1)
                w[i] += delta
                pp[name] = w.reshape(p[name].shape)
                y, _ = forward(s, pp, x)
            return loss(kind, y, target)[0]
        out.append((value(h) - value(-h)) / (2 * h))
    return np.array(out)


def check(folder, layer=1, t=12, sequences=2, kind="kl", seed=0):
    """Max relative error of the oracle's backward against finite differences, per parameter."""
    from oracle.come_reference import layer_weights
    config, weights = numpy_forward.load(folder)
    lw = layer_weights(weights, layer)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((sequences, t, config["hidden_size"]))
    target = rng.standard_normal(x.shape)
    _, dx, grads, s, p = loss_and_gradients(config, lw, layer, x, target, kind)
    worst = {}
    for name, grad in list(grads.items()) + [("input", dx)]:
        idx = rng.choice(grad.size, size=min(8, grad.size), replace=False)
        fd = finite_differences(config, p, s, x, target, name, idx, kind)
        worst[name] = float(np.abs(grad.reshape(-1)[idx] - fd).max() / max(np.abs(fd).max(), 1e-12))
    return worst


if __name__ == "__main__":
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[2] / "fixtures/tiny"
    for fam in sys.argv[1:] or ["llama-mha", "llama-gqa", "qwen2", "qwen3", "gemma2", "phi3"]:
        for kind in ("kl", "mse"):
            w = check(root / fam, layer=0 if fam == "gemma2" else 1, t=20, kind=kind)
            print(f"{fam:10s} {kind:3s} max relative error vs finite differences: {max(w.values()):.2e}")
