"""heal and prune --heal against the independent numpy reference (tests/oracle/heal_reference.py)."""
import json
import shutil
import struct
import sys

import numpy as np
import xxhash
from safetensors.numpy import load_file

from conftest import REPO, TINY_MODELS, run

sys.path.insert(0, str(REPO / "tests"))
from oracle.heal_reference import heal as reference_heal  # noqa: E402
from oracle.numpy_forward import load  # noqa: E402

# Every family's first merge window that leaves a layer after it.
WINDOWS = {"llama-mha": [1, 2], "llama-gqa": [1, 2], "qwen2": [0, 1], "qwen3": [0, 1]}


def calib_windows(tmp_path, config, n=12, length=32, seed=1):
    """Enough tokens (n × length) to exceed every fixture's FFN width, so the fit is determined."""
    rng = np.random.default_rng(seed)
    path = tmp_path / f"calib-{n}x{length}-{seed}.json"
    path.write_text(json.dumps(rng.integers(0, config["vocab_size"], size=(n, length)).tolist()))
    return path


def tensors(folder):
    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update({k: v.astype(np.float64) for k, v in load_file(f).items()})
    return out


def provenance(folder):
    manifest = json.loads((folder / "surgery.json").read_text())
    return [tuple(l["original"]) for l in sorted(manifest["layers"], key=lambda l: l["output"])]


def relative_error(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def check_against_reference(tiny, student, healed, calib, selection, ridge=0.1, name=None):
    config, teacher = load(tiny / name)
    student_config, student_weights = load(student)
    ws = json.loads(calib.read_text())
    expected, _ = reference_heal(config, teacher, student_config, student_weights, provenance(student), ws,
                                 selection=selection, ridge=ridge)
    assert expected, "the reference plans at least one refit"
    ours = tensors(healed)
    manifest = json.loads((healed / "surgery.json").read_text())
    refits = {r["layer"]: r for r in manifest["healing"]["refits"]}
    assert sorted(refits) == sorted(expected), (name, sorted(refits), sorted(expected))
    for b, ref in expected.items():
        down = ours[f"model.layers.{b}.mlp.down_proj.weight"]
        assert relative_error(down, ref["down"]) < 1e-4, (name, b, relative_error(down, ref["down"]))
        assert refits[b]["target"] == ref["target"]
        assert abs(refits[b]["mse_before"] - ref["mse_before"]) <= 1e-3 * ref["mse_before"], (name, b)
        assert abs(refits[b]["mse_after"] - ref["mse_after"]) <= 1e-3 * ref["mse_after"] + 1e-9, (name, b)
        assert ref["mse_after"] < ref["mse_before"]
    # Everything else is the student's, unchanged.
    for key, value in student_weights.items():
        layer = key.split(".")[2] if key.startswith("model.layers.") else None
        if layer is not None and int(layer) in expected and "down_proj" in key:
            continue
        assert np.array_equal(ours[key], value), (name, key)
    return manifest


def merged_student(tiny, tmp_path, name, layers="1,2", **windows):
    """`name` with `layers` merged on calibration windows; returns (student, windows file)."""
    config, _ = load(tiny / name)
    calib = calib_windows(tmp_path, config, **windows)
    student = tmp_path / f"{name}-merged-{layers.replace(',', '-')}"
    run("merge", tiny / name, "--layers", layers, "--calib-tokens", calib, "-o", student)
    return student, calib


def test_heal_matches_reference_on_every_family(tiny, tmp_path):
    for name in TINY_MODELS:
        student, calib = merged_student(tiny, tmp_path, name, ",".join(map(str, WINDOWS[name])))
        healed = tmp_path / f"{name}-healed"
        run("heal", tiny / name, student, "--calib-tokens", calib, "--dtype", "f32", "-o", healed)
        manifest = check_against_reference(tiny, student, healed, calib, "merged", name=name)
        assert manifest["schema"] == "ckpt-surgeon.surgery/2"
        assert manifest["healing"]["student"]["output"] == json.loads((student / "surgery.json").read_text())["output"]
        assert manifest["steps"] == json.loads((student / "surgery.json").read_text())["steps"]
        run("verify", healed)


def test_gaps_on_a_one_layer_deletion_and_prune_heal_equals_prune_then_heal(tiny, tmp_path):
    name = "llama-mha"
    config, _ = load(tiny / name)
    calib = calib_windows(tmp_path, config)
    pruned = tmp_path / "shortgpt"
    run("prune", tiny / name, "--method", "shortgpt", "--target-layers", config["num_hidden_layers"] - 1,
        "--calib-tokens", calib, "-o", pruned)
    healed = tmp_path / "shortgpt-healed"
    run("heal", tiny / name, pruned, "--layers", "gaps", "--calib-tokens", calib, "-o", healed)
    check_against_reference(tiny, pruned, healed, calib, "gaps", name=name)
    # The default selection finds no merged layer and says what to do instead.
    refused = run("heal", tiny / name, pruned, "--calib-tokens", calib, "-o", tmp_path / "none", check=False)
    assert refused.returncode != 0 and "--layers gaps" in refused.stderr and not (tmp_path / "none").exists()
    # prune --heal (deletions default to gaps) writes exactly what prune followed by heal writes.
    direct = tmp_path / "shortgpt-heal-direct"
    run("prune", tiny / name, "--method", "shortgpt", "--target-layers", config["num_hidden_layers"] - 1,
        "--calib-tokens", calib, "--heal", "-o", direct)
    a = json.loads((direct / "surgery.json").read_text())
    b = json.loads((healed / "surgery.json").read_text())
    assert a["output"]["tensors"] == b["output"]["tensors"]
    assert a["healing"]["refits"] == b["healing"]["refits"] and a["healing"].get("student") is None


def identity_manifest(folder, source):
    """A hand-written manifest saying `folder` is `source` unpruned (every layer its own)."""
    def hashes(path):
        out = {}
        for f in sorted(path.glob("*.safetensors")):
            data = f.read_bytes()
            n = struct.unpack("<Q", data[:8])[0]
            header = json.loads(data[8:8 + n])
            for key, info in header.items():
                if key != "__metadata__":
                    begin, end = info["data_offsets"]
                    out[key] = xxhash.xxh3_64_hexdigest(data[8 + n + begin:8 + n + end])
        return out
    config = json.loads((source / "config.json").read_text())
    layers = config["num_hidden_layers"]
    manifest = {
        "schema": "ckpt-surgeon.surgery/1",
        "tool": {"name": "test", "version": "0", "command": []},
        "source": {"path": str(source), "format": "safetensors", "config_xxh3": "", "layers": layers,
                   "tensors": hashes(source)},
        "method": {"name": "identity"}, "steps": [],
        "layers": [{"output": i, "original": [i, i]} for i in range(layers)], "distillation_pairs": [],
        "output": {"format": "safetensors", "layers": layers, "files": ["model.safetensors"], "tensors": hashes(folder)},
    }
    (folder / "surgery.json").write_text(json.dumps(manifest))


def test_healing_an_unpruned_model_returns_its_own_weights(tiny, tmp_path):
    for name in ["llama-mha", "qwen2"]:
        config, weights = load(tiny / name)
        student = tmp_path / f"{name}-copy"
        shutil.copytree(tiny / name, student)
        identity_manifest(student, tiny / name)
        calib = calib_windows(tmp_path, config, n=16)
        healed = tmp_path / f"{name}-self-healed"
        run("heal", tiny / name, student, "--layers", "all", "--ridge", "1e-9", "--calib-tokens", calib,
            "--dtype", "f32", "-o", healed)
        ours = tensors(healed)
        for layer in range(config["num_hidden_layers"]):
            key = f"model.layers.{layer}.mlp.down_proj.weight"
            assert relative_error(ours[key], weights[key]) < 1e-3, (name, layer, relative_error(ours[key], weights[key]))


def test_spilled_states_heal_the_same(tiny, tmp_path):
    name = "llama-gqa"
    student, calib = merged_student(tiny, tmp_path, name)
    outs = []
    for budget in ["2GB", "1KB"]:
        out = tmp_path / f"healed-{budget}"
        run("heal", tiny / name, student, "--calib-tokens", calib, "--memory-budget", budget, "-o", out)
        outs.append(json.loads((out / "surgery.json").read_text())["output"]["tensors"])
    assert outs[0] == outs[1]


def test_heal_to_gguf_carries_the_healing_summary(tiny, tmp_path):
    import gguf
    name = "llama-gqa"
    student, calib = merged_student(tiny, tmp_path, name)
    healed = tmp_path / "healed.gguf"
    run("heal", tiny / name, student, "--calib-tokens", calib, "-o", healed)
    run("verify", healed)
    reader = gguf.GGUFReader(str(healed))
    fields = reader.fields
    assert bytes(fields["ckpt_surgeon.healing.method"].parts[-1]).decode() == "ridge-down_proj"
    layers = [int(fields["ckpt_surgeon.healing.layers"].parts[i][0]) for i in fields["ckpt_surgeon.healing.layers"].data]
    assert layers == [1]
    # export of the healed HF folder carries the same keys.
    folder = tmp_path / "healed-hf"
    run("heal", tiny / name, student, "--calib-tokens", calib, "-o", folder)
    exported = tmp_path / "exported.gguf"
    run("export", folder, "-o", exported)
    assert "ckpt_surgeon.healing.layers" in gguf.GGUFReader(str(exported)).fields
    # A GGUF student (manifest beside it) heals like the HF one.
    gguf_student = tmp_path / "merged.gguf"
    run("merge", tiny / name, "--layers", "1,2", "--calib-tokens", calib, "-o", gguf_student)
    from_gguf = tmp_path / "healed-from-gguf"
    run("heal", tiny / name, gguf_student, "--calib-tokens", calib, "-o", from_gguf)
    a = json.loads((from_gguf / "surgery.json").read_text())["healing"]["refits"][0]
    b = json.loads((folder / "surgery.json").read_text())["healing"]["refits"][0]
    assert abs(a["mse_after"] - b["mse_after"]) <= 1e-3 * b["mse_after"], (a, b)


def test_bad_heal_inputs_fail_with_one_line_and_write_nothing(tiny, tmp_path):
    name = "llama-gqa"
    student, calib = merged_student(tiny, tmp_path, name)
    tampered = tmp_path / "tampered"
    shutil.copytree(student, tampered)
    data = bytearray((tampered / "model.safetensors").read_bytes())
    data[-3] ^= 0xFF
    (tampered / "model.safetensors").write_bytes(bytes(data))
    miscounted = tmp_path / "miscounted"
    shutil.copytree(student, miscounted)
    m = json.loads((miscounted / "surgery.json").read_text())
    m["output"]["layers"] += 1
    (miscounted / "surgery.json").write_text(json.dumps(m))
    other_teacher = tmp_path / "other-teacher"
    shutil.copytree(tiny / name, other_teacher)
    data = bytearray((other_teacher / "model.safetensors").read_bytes())
    data[-3] ^= 0xFF
    (other_teacher / "model.safetensors").write_bytes(bytes(data))
    cases = [
        ("teacher is not the source", [other_teacher, student], "not the model"),
        ("another model as teacher", [tiny / "llama-mha", student], "not the model"),
        ("student without a manifest", [tiny / name, tiny / name], "no surgery manifest"),
        ("student failing verify", [tiny / name, tampered], "does not match"),
        ("layer count disagrees", [tiny / name, miscounted], "its manifest"),
        ("ridge zero", [tiny / name, student, "--ridge", "0"], "--ridge"),
        ("ridge negative", [tiny / name, student, "--ridge=-1"], "--ridge"),
    ]
    before = {p: p.read_bytes() for p in [student / "model.safetensors", tiny / name / "model.safetensors"]}
    for what, args, message in cases:
        out = tmp_path / f"out-{what.replace(' ', '-')}"
        proc = run("heal", *args, "--calib-tokens", calib, "-o", out, check=False)
        assert proc.returncode != 0, what
        assert message in proc.stderr, (what, proc.stderr)
        # One line; argument errors add ArgumentParser's usage and help pointers.
        lines = [l for l in proc.stderr.splitlines() if l.strip() and not l.lstrip().startswith(("Usage", "See", "Help"))]
        assert len(lines) == 1, (what, proc.stderr)
        assert not out.exists(), what
    assert all(p.read_bytes() == b for p, b in before.items()), "inputs unchanged"


def test_a_singular_system_falls_back_to_a_larger_ridge_and_says_so(tiny, tmp_path):
    name = "llama-mha"
    student, calib = merged_student(tiny, tmp_path, name, n=1, length=8)  # 8 tokens, 128-wide FFN: rank 8
    out = tmp_path / "healed"
    proc = run("heal", tiny / name, student, "--calib-tokens", calib, "--ridge", "1e-300", "-o", out)
    manifest = json.loads((out / "surgery.json").read_text())
    used = manifest["healing"]["refits"][0]["ridge"]
    assert used > 1e-300 and "singular" in proc.stderr, proc.stderr


def test_smollm2_heal_streams_within_a_fraction_of_the_model_and_helps(smollm2, smollm2_hf, tmp_path):
    """On the real model (f32 HF folder, 514 MB): merging layers 26–27 then healing keeps peak
    RSS far below the teacher plus the student (so neither is loaded whole), and the refit
    lowers perplexity on text it was not fitted on."""
    import re
    import subprocess
    from conftest import CLI
    merged = tmp_path / "merged"
    run("merge", smollm2_hf, "--layers", "26,27", "--nsamples", "4", "--seqlen", "128", "-o", merged)
    # More calibration tokens than the FFN is wide (1536), from heal's default corpora.
    calib = ["--nsamples", "16", "--seqlen", "256"]
    healed = tmp_path / "healed"
    timing = tmp_path / "time.txt"
    subprocess.run(["/usr/bin/time", "-v", "-o", str(timing), str(CLI), "heal", str(smollm2_hf), str(merged), *calib,
                    "-o", str(healed)], check=True, capture_output=True)
    rss_mb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", timing.read_text()).group(1)) / 1024
    model_mb = sum(f.stat().st_size for f in smollm2_hf.glob("*.safetensors")) / 2**20
    assert rss_mb < 0.5 * model_mb, (rss_mb, model_mb)
    run("verify", healed)
    text = tmp_path / "c4.txt"
    from conftest import SHARED
    with open(SHARED / "data/c4/c4_validation_2k.jsonl") as f:
        text.write_text("\n\n".join(json.loads(next(f))["text"] for _ in range(40)))
    ppl = {m: json.loads(run("ppl", m, "--text", text, "--windows", "4", "--json").stdout)["perplexity"]
           for m in (merged, healed)}
    assert ppl[healed] < ppl[merged], ppl
