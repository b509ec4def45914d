"""Threads and prefetch change the wall time, not the results.

SmolLM2's prune is run with the next layer's weights prefetched and not, on 1 and 2
threads, and pinned to one core with taskset: the outputs must be byte-identical. With
healing, prefetch on or off must give the same bytes; across thread counts OpenBLAS's
sgemm and dpotrf round differently (a single thread takes other kernels), and the refit
reads activations directly, so there the healed weights must agree to f32 rounding.
`--profile` must account for the run (phases within the wall time, the projection FLOPs
at least those counted from SmolLM2's shapes here).
"""
import json
import os
import re
import shutil
import subprocess

import numpy as np
from safetensors.numpy import load_file

from conftest import CLI, run

PRUNE = ["--method", "come", "--target-layers", "27", "--nsamples", "2", "--seqlen", "128"]


def prune(smollm2, out, *extra, prefix=()):
    env = dict(os.environ)
    env.pop("OPENBLAS_NUM_THREADS", None)
    proc = subprocess.run([*prefix, str(CLI), "prune", str(smollm2), *PRUNE, "-o", str(out), *extra],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_prune_is_byte_identical_with_prefetch_threads_and_one_core(smollm2, tmp_path):
    reference = prune(smollm2, tmp_path / "ref.gguf", "--threads", "2", "--prefetch")
    variants = {"no-prefetch": ["--threads", "2", "--no-prefetch"], "one-thread": ["--threads", "1"],
                "one-thread-no-prefetch": ["--threads", "1", "--no-prefetch"]}
    for name, extra in variants.items():
        assert prune(smollm2, tmp_path / f"{name}.gguf", *extra).stdout.split("→")[0] == reference.stdout.split("→")[0]
    assert shutil.which("taskset"), "taskset (util-linux) is needed to pin a run to one core"
    prune(smollm2, tmp_path / "taskset.gguf", prefix=("taskset", "-c", "0"))
    expected = (tmp_path / "ref.gguf").read_bytes()
    for name in [*variants, "taskset"]:
        assert (tmp_path / f"{name}.gguf").read_bytes() == expected, f"{name}: output differs from 2 threads with prefetch"


def test_healing_is_byte_identical_with_prefetch_and_close_across_threads(smollm2, tmp_path):
    outputs = {}
    for name, extra in {"prefetch": ["--threads", "2"], "no-prefetch": ["--threads", "2", "--no-prefetch"],
                        "one-thread": ["--threads", "1"]}.items():
        outputs[name] = tmp_path / f"{name}"
        prune(smollm2, outputs[name], "--heal", *extra)
    weights = {name: folder / "model.safetensors" for name, folder in outputs.items()}
    assert weights["prefetch"].read_bytes() == weights["no-prefetch"].read_bytes()
    two, one = load_file(str(weights["prefetch"])), load_file(str(weights["one-thread"]))
    assert two.keys() == one.keys()
    for name in two:
        scale = float(np.abs(two[name]).max()) or 1.0
        assert np.abs(two[name] - one[name]).max() <= 1e-4 * scale, name


def test_perplexity_is_identical_with_prefetch_and_close_across_threads(smollm2, tmp_path):
    results = {}
    for name, extra in {"one-thread": ["--threads", "1"], "no-prefetch": ["--threads", "2", "--no-prefetch"],
                        "prefetch": ["--threads", "2"]}.items():
        result = json.loads(run("ppl", smollm2, "--ctx", "256", "--windows", "3", "--json", *extra).stdout)
        for timing in ("tokens_per_second", "seconds"):
            result.pop(timing, None)
        results[name] = result
    assert results["prefetch"] == results["no-prefetch"]
    assert abs(results["one-thread"]["mean_nll"] - results["prefetch"]["mean_nll"]) < 1e-6, results


def test_profile_accounts_for_the_run(smollm2, tmp_path):
    proc = prune(smollm2, tmp_path / "p.gguf", "--profile", "--threads", "2")
    report = proc.stderr[proc.stderr.index("phase "):]
    seconds = {m.group(1).strip(): float(m.group(2)) for m in re.finditer(r"^(.+?)\s+(-?[0-9.]+)\s+[0-9.]+%$", report, re.M)}
    wall = seconds["wall"]
    assert 0 < seconds["layer forwards"] <= wall
    parts = ["projections (sgemm)", "attention", "statistics"]
    assert all(seconds[p] >= 0 for p in parts) and sum(seconds[p] for p in parts) <= seconds["layer forwards"] + 1e-3
    assert seconds["everything else"] >= -0.05 * wall, "phases add up to more than the wall time"
    flops = re.search(r"^FLOPs: ([0-9.]+) G \(projections ([0-9.]+) G, attention ([0-9.]+) G\)", report, re.M)
    assert flops, report
    # Projections of one SmolLM2 layer per token: q, o (576²), k, v (576·192), gate, up, down (576·1536).
    per_token = 2 * (2 * 576 * 576 + 2 * 576 * 192 + 3 * 576 * 1536)
    forwards = int(re.search(r"\((\d+) layer forwards", proc.stdout).group(1))
    prune_tokens = forwards * 2 * 128
    # Healing adds its own forwards (teacher, student, refits) at the same width.
    projection_g = float(flops.group(2))
    assert projection_g * 1e9 >= per_token * prune_tokens * 0.999, (projection_g, per_token * prune_tokens)
    assert re.search(r"^temporary files: at most [0-9.]+ MB at once in ", report, re.M)
