"""Files we write, read back by the reference libraries; round trips are bit-exact."""
import json
import math

import numpy as np
from gguf import GGUFReader
from safetensors import safe_open
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from conftest import SHARED, TINY_MODELS, hf_name, llama_permute, run


def load_folder(folder):
    tensors = {}
    for f in sorted(folder.glob("*.safetensors")):
        tensors.update(load_file(f))
    return tensors


def raw_folder(folder):
    """name -> (dtype, shape, bytes) straight from each file's header, for any dtype
    (numpy has no bfloat16, so the reference loader cannot return BF16 tensors)."""
    tensors = {}
    for f in sorted(folder.glob("*.safetensors")):
        raw = f.read_bytes()
        n = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8:8 + n])
        header.pop("__metadata__", None)
        for name, info in header.items():
            begin, end = info["data_offsets"]
            tensors[name] = (info["dtype"], info["shape"], raw[8 + n + begin:8 + n + end])
    return tensors


def same_bytes(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def gguf_tensors(path):
    out = {}
    for t in GGUFReader(path).tensors:
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        out[t.name] = (t.tensor_type.name, np.asarray(t.data).reshape(shape))
    return out


def llama3_rope_factors(cfg):
    """convert_hf_to_gguf.py's LlamaModel.generate_extra_tensors (rope_freqs), in numpy f32."""
    s = cfg["rope_scaling"]
    dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    freqs = 1.0 / (np.float32(cfg["rope_theta"]) ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    factor, low, high = s.get("factor", 8.0), s.get("low_freq_factor", 1.0), s.get("high_freq_factor", 4.0)
    old = s.get("original_max_position_embeddings", 8192)
    out = []
    for f in freqs:
        wavelen = 2 * math.pi / f
        if wavelen < old / high:
            out.append(1.0)
        elif wavelen > old / low:
            out.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def test_hf_to_gguf_layout_and_metadata(tiny, tmp_path):
    """GGUF written from each tiny model: names, q/k permutation (llama only), 1-D F32, keys."""
    for name in TINY_MODELS:
        cfg = json.loads((tiny / name / "config.json").read_text())
        out = tmp_path / f"{name}.gguf"
        run("convert", tiny / name, "-o", out)
        reader = GGUFReader(out)
        arch = reader.fields["general.architecture"].contents()
        assert arch == {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3"}[cfg["model_type"]]
        f = lambda k: reader.fields[f"{arch}.{k}"].contents()
        assert f("block_count") == cfg["num_hidden_layers"]
        assert f("embedding_length") == cfg["hidden_size"]
        assert f("feed_forward_length") == cfg["intermediate_size"]
        assert f("attention.head_count") == cfg["num_attention_heads"]
        assert f("attention.head_count_kv") == cfg["num_key_value_heads"]
        assert np.float32(f("rope.freq_base")) == np.float32(cfg["rope_theta"])
        assert np.float32(f("attention.layer_norm_rms_epsilon")) == np.float32(cfg["rms_norm_eps"])
        tokens = reader.fields["tokenizer.ggml.tokens"].contents()
        vocab = json.loads((tiny / name / "tokenizer.json").read_text())["model"]["vocab"]
        assert all(tokens[i] == tok for tok, i in vocab.items())
        src = load_folder(tiny / name)
        written = gguf_tensors(out)
        scaling = cfg.get("rope_scaling") or {}
        if scaling.get("rope_type") == "llama3":
            gtype, factors = written.pop("rope_freqs.weight")
            assert gtype == "F32" and np.allclose(factors, llama3_rope_factors(cfg), rtol=1e-6), factors
        assert "rope_freqs.weight" not in written
        assert set(written) == {n for n in written} and len(written) == len(src)
        for gname, (gtype, data) in written.items():
            w = src[hf_name(gname)].astype(np.float32) if data.ndim == 1 else src[hf_name(gname)]
            if cfg["model_type"] == "llama" and ".attn_q." in gname:
                w = llama_permute(w, cfg["num_attention_heads"])
            if cfg["model_type"] == "llama" and ".attn_k." in gname:
                w = llama_permute(w, cfg["num_key_value_heads"])
            if data.ndim == 1:
                assert gtype == "F32", gname
            assert same_bytes(np.ascontiguousarray(data).view(w.dtype).reshape(w.shape), np.ascontiguousarray(w)), gname


def test_round_trips_are_bit_exact(tiny, tmp_path):
    """HF -> GGUF -> HF at each dtype; safetensors -> resharded safetensors -> single."""
    cases = [("llama-mha", "keep"), ("qwen2", "keep"), ("qwen3", "keep"), ("llama-gqa", "f16"),
             ("qwen3", "bf16"), ("llama-mha", "f16")]
    for name, dtype in cases:
        start = tmp_path / f"{name}-{dtype}-start"
        run("convert", tiny / name, "-o", start, "--dtype", dtype)
        gguf = tmp_path / f"{name}-{dtype}.gguf"
        run("convert", start, "-o", gguf, "--dtype", dtype)
        back = tmp_path / f"{name}-{dtype}-back"
        run("convert", gguf, "-o", back, "--dtype", dtype)
        a, b = raw_folder(start), raw_folder(back)
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == b[k], (name, dtype, k)
    for name in TINY_MODELS:
        sharded = tmp_path / f"{name}-sharded"
        run("convert", tiny / name, "-o", sharded, "--max-shard-size", "50KB")
        index = json.loads((sharded / "model.safetensors.index.json").read_text())
        assert len(set(index["weight_map"].values())) > 2
        assert index["metadata"]["total_size"] == sum(t.nbytes for t in load_folder(tiny / name).values())
        single = tmp_path / f"{name}-single"
        run("convert", sharded, "-o", single)
        a, b = load_folder(tiny / name), load_folder(single)
        assert a.keys() == b.keys() and all(same_bytes(a[k], b[k]) for k in a), name


def test_dtype_conversion_matches_numpy(tiny, tmp_path):
    out = tmp_path / "f16"
    run("convert", tiny / "qwen3", "-o", out, "--dtype", "f16")
    a, b = load_folder(tiny / "qwen3"), load_folder(out)
    for k in a:
        assert same_bytes(b[k], a[k].astype(np.float16)), k
    out = tmp_path / "bf16"
    run("convert", tiny / "qwen3", "-o", out, "--dtype", "bf16")
    with safe_open(out / "model.safetensors", framework="numpy") as st:
        assert set(st.keys()) == set(a)  # the reference reader parses it (numpy cannot hold BF16 values)
    raw = raw_folder(out)
    for k, x in a.items():
        dtype, shape, data = raw[k]
        assert dtype == "BF16" and shape == list(x.shape)
        got = np.frombuffer(data, dtype=np.uint16)
        u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
        expected = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16).ravel()
        assert np.array_equal(got, expected), k
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["torch_dtype"] == "bfloat16"


def test_converted_gguf_model_equals_hf_source(tiny, tmp_path):
    """gguf-py wrote llama-gqa.f32.gguf as llama.cpp's converter would; we read it back to HF."""
    out = tmp_path / "back"
    run("convert", tiny / "gguf/llama-gqa.f32.gguf", "-o", out)
    src, back = load_folder(tiny / "llama-gqa"), load_folder(out)
    assert src.keys() == back.keys()
    for k in src:
        assert same_bytes(back[k], src[k].astype(np.float32)), k
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["num_key_value_heads"] == 2 and cfg["tie_word_embeddings"] is True
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    ref = Tokenizer.from_file(str(tiny / "llama-gqa/tokenizer.json"))
    text = (SHARED / "data/tinyshakespeare/input.txt").read_text()[:20000]
    assert tok.encode(text).ids == ref.encode(text).ids


def test_smollm2_hf_folder_is_complete(smollm2_hf):
    cfg = json.loads((smollm2_hf / "config.json").read_text())
    assert cfg["model_type"] == "llama" and cfg["num_hidden_layers"] == 30
    t = load_folder(smollm2_hf)
    h, f, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    kv = cfg["num_key_value_heads"] * cfg["head_dim"]
    assert t["model.embed_tokens.weight"].shape == (v, h)
    assert "lm_head.weight" not in t and cfg["tie_word_embeddings"]
    for layer in range(30):
        p = f"model.layers.{layer}."
        assert t[p + "self_attn.q_proj.weight"].shape == (cfg["num_attention_heads"] * cfg["head_dim"], h)
        assert t[p + "self_attn.k_proj.weight"].shape == (kv, h)
        assert t[p + "mlp.down_proj.weight"].shape == (h, f)
    assert len(t) == 272
    tc = json.loads((smollm2_hf / "tokenizer_config.json").read_text())
    assert tc["eos_token"] == "<|im_end|>" and "chat_template" in tc


def test_smollm2_tokenizer_json_matches_vectors_and_corpora(smollm2_hf):
    tok = Tokenizer.from_file(str(smollm2_hf / "tokenizer.json"))
    vectors = SHARED / "data/tokenizer-vectors"
    inputs = (vectors / "smollm2-135m.inp").read_text().split("\n__ggml_vocab_test__\n")
    outputs = (vectors / "smollm2-135m.out").read_text().split("\n")
    pairs = list(zip(inputs, outputs))
    assert len(pairs) >= 46
    for text, ids in pairs:
        assert tok.encode(text, add_special_tokens=False).ids == [int(i) for i in ids.split()], repr(text)
    assert tok.decode(tok.encode("Hello world 123").ids) == "Hello world 123"


def test_smollm2_gguf_round_trip(smollm2_hf, smollm2, tmp_path):
    """HF (f32) -> GGUF F32 -> HF is bit-exact; the GGUF carries what llama.cpp needs."""
    gguf = tmp_path / "s.gguf"
    run("convert", smollm2_hf, "-o", gguf)
    back = tmp_path / "back"
    run("convert", gguf, "-o", back)
    assert (smollm2_hf / "model.safetensors").read_bytes() == (back / "model.safetensors").read_bytes()
    assert (smollm2_hf / "tokenizer.json").read_bytes() == (back / "tokenizer.json").read_bytes()
    ours, orig = GGUFReader(gguf), GGUFReader(smollm2)
    for key in ["llama.block_count", "llama.embedding_length", "llama.attention.head_count_kv",
                "llama.rope.freq_base", "llama.attention.layer_norm_rms_epsilon", "tokenizer.ggml.model",
                "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type",
                "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.chat_template"]:
        assert ours.fields[key].contents() == orig.fields[key].contents(), key
    # The f16 export is numpy's f16 of the f32 weights (1-D tensors stay F32).
    f16 = tmp_path / "s.f16.gguf"
    run("convert", smollm2_hf, "-o", f16, "--dtype", "f16")
    t = {x.name: x for x in GGUFReader(f16).tensors}
    w = load_file(smollm2_hf / "model.safetensors")["model.layers.3.mlp.up_proj.weight"]
    assert np.asarray(t["blk.3.ffn_up.weight"].data).tobytes() == w.astype(np.float16).tobytes()
    assert t["blk.3.attn_norm.weight"].tensor_type.name == "F32"
