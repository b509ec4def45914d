"""The summary of bench/distill.sh: the perplexity curve (CSV and PNG), training tokens/s
next to ppl tokens/s, GFLOP/s of the training steps next to sgemm, peak RSS.

    python bench/distill_summary.py bench/out/distill
"""
import glob, json, os, re, sys
out = sys.argv[1]
healed = json.load(open(f"{out}/ppl-healed.json"))
rows = [("healed", 0, 0, healed["perplexity"])]
summary = {}
for mode in ["sp", "mp"]:
    m = json.load(open(f"{out}/{mode}/surgery.json"))["distillation"]
    steps_per_pass = m["pairs"][0]["steps"]
    for snap in sorted(glob.glob(f"{out}/{mode}.step-*.ppl.json")):
        step = int(re.search(r"step-(\d+)", snap).group(1))
        trained = step * m["batch"] * m["text"]["seqlen"]
        rows.append((mode, step, trained, json.load(open(snap))["perplexity"]))
    final = json.load(open(f"{out}/{mode}.ppl.json"))["perplexity"]
    total = m["tokens"] * (len(m["pairs"]) if mode == "mp" else 1)
    rows.append((mode, steps_per_pass * (len(m["pairs"]) if mode == "mp" else 1), total, final))
    log = open(f"{out}/{mode}.log").read()
    t = re.search(r"training: (\d+) tokens in ([\d.]+) s \(([\d.]+) tokens/s\); ([\d.]+) s in all", log)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(f"{out}/{mode}.time").read()).group(1))
    summary[mode] = dict(perplexity=final, training_tokens_per_s=float(t.group(3)), wall_s=float(t.group(4)),
                         training_s=float(t.group(2)), peak_rss_mb=rss / 1024, tokens=total)
for path in [f"{out}/curve.csv", "bench/distill-curve.csv"]:
    with open(path, "w") as f:
        f.write("mode,step,training_tokens,wikitext2_test_ppl_40w\n")
        for r in rows:
            f.write(f"{r[0]},{r[1]},{r[2]},{r[3]:.4f}\n")
ppl_rate = healed["windows"] * healed["context"] / healed["seconds"]
print("== summary")
print(f"ppl of the healed student: {healed['perplexity']:.4f} at {ppl_rate:.1f} tokens/s")
for mode, s in summary.items():
    print(f"distill {mode}: ppl {s['perplexity']:.4f}; {s['tokens']} training tokens, {s['training_tokens_per_s']:.1f} tokens/s "
          f"in training steps ({s['training_tokens_per_s'] / ppl_rate:.2f}x ppl), {s['wall_s']:.0f} s wall, "
          f"peak RSS {s['peak_rss_mb']:.0f} MB")


def flops_per_token(config, seqlen, trains):
    """FLOPs per token of one layer's training step as the kernels compute them: projections
    2·params forward, once more for d input and once for d weights (trains); attention per
    block of 128 query rows over the keys up to the block's end: QKᵀ and PV forward, and the
    scores again, dP, dV, dQ and dK backward."""
    h, heads = config["hidden_size"], config["num_attention_heads"]
    kv, hd = config.get("num_key_value_heads", heads), config.get("head_dim") or h // heads
    params = h * heads * hd * 2 + h * kv * hd * 2 + 3 * h * config["intermediate_size"]
    scored = sum(min(128, seqlen - f) * (f + min(128, seqlen - f)) for f in range(0, seqlen, 128)) / seqlen
    attention = 2 * scored * hd * heads
    return (3 if trains else 2) * 2 * params + 7 * attention


config = json.load(open(f"{out}/healed/config.json"))
sgemm = float(re.search(r"sgemm ([\d.]+) GFLOP/s", open(f"{out}/sgemm.txt").read()).group(1))
for mode, s in summary.items():
    m = json.load(open(f"{out}/{mode}/surgery.json"))
    trained = {p["b"] for p in m["distillation_pairs"]}
    seqlen = m["distillation"]["text"]["seqlen"]
    if mode == "sp":
        span = range(min(trained), max(trained) + 1)
        per_token = sum(flops_per_token(config, seqlen, l in trained) for l in span)
    else:
        per_token = flops_per_token(config, seqlen, True)
    s["gflops"] = per_token * s["training_tokens_per_s"] / 1e9
    print(f"distill {mode}: training steps at {s['gflops']:.1f} GFLOP/s = {s['gflops'] / sgemm:.2f}x sgemm ({sgemm:.1f} GFLOP/s, same run)")
json.dump(dict(healed=healed, summary=summary), open(f"{out}/summary.json", "w"), indent=1)
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for mode in ["sp", "mp"]:
        pts = sorted((r[2], r[3]) for r in rows if r[0] == mode)
        loss = json.load(open(f"{out}/{mode}/surgery.json"))["distillation"]["loss"]
        ax.plot([0] + [p[0] for p in pts], [healed["perplexity"]] + [p[1] for p in pts], marker="o",
                label=f"CoMe-{mode}, --loss {loss}")
    ax.axhline(healed["perplexity"], color="gray", linestyle="--", linewidth=0.8, label="healed (start)")
    ax.set_xlabel("training tokens (mp: summed over pairs)")
    ax.set_ylabel("wikitext-2 test perplexity (40 × 512)")
    ax.set_title("SmolLM2-135M 30→21 layers (CoMe, healed): distillation")
    ax.legend()
    fig.tight_layout()
    fig.savefig("bench/distill-curve.png", dpi=110)
    print("wrote bench/distill-curve.png")
except ImportError:
    print("matplotlib missing: no plot (the CSV has the curve)")
