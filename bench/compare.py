"""Runs every pruning method at several depths and evaluates each result (the comparison
table of the CoMe paper, on a model you have): wikitext-2 test and C4 validation
perplexity, wall time and peak RSS of each `prune`. With --heal (the default), every
pruned model is also healed (`ckpt-surgeon heal`, its default corpora and ridge,
--heal-nsamples windows; deletion methods with --layers gaps) and gets a healed row with the heal's wall time and peak RSS.
Writes table.md, results.json, results.csv and ppl.png to --out; prints the table.

Progressive methods (come, come-p, sleb) run once to the smallest depth with
--save-steps: the model after k steps is exactly what a run to depth L - k produces, so
the shallower depths are taken from those steps (their time and RSS are the full run's).

C4: the first texts of ../shared/data/c4/c4_validation_2k.jsonl joined by blank lines,
scored in windows of 512 tokens. This is not the GPTQ selection of 256 random windows
the paper uses, so compare methods with each other, not with the paper's numbers.
"""
import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CKPT_SHARED", REPO.parent / "shared"))
CLI = os.environ.get("CKPT_SURGEON", str(REPO / ".build/release/ckpt-surgeon"))
PROGRESSIVE = {"come", "come-p", "sleb"}
MERGING = {"come", "come-p", "laco", "mka"}
ALL_METHODS = ["come", "come-p", "shortgpt", "reverse", "magnitude", "magnitude+", "sleb", "laco", "mka"]


def log(message):
    print(f"compare: {message}", file=sys.stderr, flush=True)


class PruneFailed(Exception):
    pass


def timed(args, cwd=None):
    """Runs args under /usr/bin/time -v; returns (stdout, wall seconds, peak RSS MB)."""
    time_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"compare-time-{os.getpid()}.txt"
    proc = subprocess.run(["/usr/bin/time", "-v", "-o", str(time_file), *map(str, args)], capture_output=True,
                          text=True, cwd=cwd)
    if proc.returncode != 0:
        raise PruneFailed((proc.stderr.strip().splitlines() or ["failed"])[-1])
    t = time_file.read_text()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024
    wall = re.search(r"Elapsed \(wall clock\) time.*: (.*)", t).group(1).split(":")
    return proc.stdout, sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall))), rss


# Peak RSS of every process the comparison starts, (MB, "prune"|"ppl", what), so the run
# as a whole can be held against a single CoMe prune.
PEAKS = []


def perplexity(model, text, windows):
    out, _, rss = timed([CLI, "ppl", str(model), "--text", str(text), "--windows", str(windows), "--json"])
    PEAKS.append((rss, "ppl", f"ppl {Path(model).name}"))
    return json.loads(out)["perplexity"]


def memory_summary(rows):
    """The largest prune and the largest evaluation next to `prune --method come`'s peak."""
    come = [r["peak_rss_mb"] for r in rows if r["method"] == "come" and not r.get("healed") and r["peak_rss_mb"]]
    if not come:
        return None
    summary = {"come_prune_mb": come[0]}
    for kind in ("prune", "heal", "ppl"):
        peaks = [p for p in PEAKS if p[1] == kind]
        if peaks:
            rss, _, what = max(peaks)
            summary[kind] = {"largest_mb": round(rss), "what": what, "ratio_to_come": round(rss / come[0], 3)}
    return summary


def layer_count(model):
    out = subprocess.run([CLI, "inspect", str(model), "--json"], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["config"]["num_hidden_layers"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.environ.get("CKPT_MODEL_GGUF", str(REPO / "models/SmolLM2-135M-Instruct.Q4_1.gguf")))
    ap.add_argument("--targets", default="27,24,21")
    ap.add_argument("--methods", default=",".join(ALL_METHODS))
    ap.add_argument("--nsamples", type=int, default=8)
    ap.add_argument("--seqlen", type=int, default=256)
    ap.add_argument("--granularity", type=int, default=20)
    ap.add_argument("--windows", type=int, default=16, help="ctx-512 windows of wikitext-2 test")
    ap.add_argument("--c4-windows", type=int, default=16, help="ctx-512 windows of the C4 sample")
    ap.add_argument("--heal", action=argparse.BooleanOptionalAction, default=True,
                    help="also heal every pruned model (default on)")
    ap.add_argument("--heal-nsamples", type=int, default=32,
                    help="heal's calibration windows of 512 tokens (its own default is 64; 32 halves the run)")
    ap.add_argument("--out", default=str(REPO / "bench/out/compare"))
    args = ap.parse_args()
    targets = sorted({int(t) for t in args.targets.split(",")}, reverse=True)
    methods = args.methods.split(",")
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    wiki = SHARED / "data/wikitext-2-raw/wiki.test.raw"
    c4 = out / "c4.txt"
    with open(SHARED / "data/c4/c4_validation_2k.jsonl") as f:
        c4.write_text("\n\n".join(json.loads(line)["text"] for line in f))

    depth = layer_count(args.model)
    calib = ["--nsamples", args.nsamples, "--seqlen", args.seqlen]
    log(f"original ({depth} layers)")
    rows = [{"method": "original", "layers": depth, "healed": False, "wiki_ppl": perplexity(args.model, wiki, args.windows),
             "c4_ppl": perplexity(args.model, c4, args.c4_windows), "seconds": None, "peak_rss_mb": None, "note": ""}]
    for method in methods:
        extra = ["--granularity", args.granularity] if method == "come-p" else []
        runs = [targets[-1]] if method in PROGRESSIVE else targets
        for target in runs:
            log(f"{method} → {target} layers")
            result = out / f"{method}-{target}"
            steps = out / f"{method}-steps"
            save = ["--save-steps", steps] if method in PROGRESSIVE and len(targets) > 1 else []
            try:
                stdout, seconds, rss = timed([CLI, "prune", args.model, "--method", method, "--target-layers", target,
                                              *calib, *extra, *save, "-o", result])
                PEAKS.append((rss, "prune", f"prune --method {method} --target-layers {target}"))
            except PruneFailed as failure:
                log(f"  {method} failed: {failure}")
                rows.append({"method": method, "layers": target, "healed": False, "wiki_ppl": None, "c4_ppl": None,
                             "seconds": None, "peak_rss_mb": None, "note": str(failure)})
                continue
            made = [(target, result, "")]
            if save:
                made += [(t, steps / f"step-{depth - t:02d}", f"step {depth - t} of the {target}-layer run")
                         for t in targets if t != target]
            for t, model, note in made:
                log(f"  evaluating {method} at {t} layers")
                rows.append({"method": method, "layers": t, "healed": False, "wiki_ppl": perplexity(model, wiki, args.windows),
                             "c4_ppl": perplexity(model, c4, args.c4_windows), "seconds": round(seconds, 1),
                             "peak_rss_mb": round(rss), "note": note or stdout.strip().splitlines()[-1].rsplit(" → ", 1)[0]})
                if args.heal:
                    rows.append(healed_row(args, method, t, model, out / f"{method}-{t}-healed", wiki, c4))
        # Rewritten after every method, so a long run can be read while it goes on.
        rows.sort(key=lambda r: (-r["layers"], r["wiki_ppl"] is None, r["wiki_ppl"] or 0))
        write_outputs(out, rows, args, depth, quiet=method != methods[-1])


def healed_row(args, method, layers, student, healed, wiki, c4):
    """Heals `student` against the original and evaluates it."""
    selection = "merged" if method in MERGING else "gaps"
    log(f"  healing {method} at {layers} layers (--layers {selection})")
    try:
        stdout, seconds, rss = timed([CLI, "heal", args.model, student, "--layers", selection,
                                      "--nsamples", args.heal_nsamples, "-o", healed, "--force"])
        PEAKS.append((rss, "heal", f"heal {method} {layers}"))
    except PruneFailed as failure:
        log(f"  heal failed: {failure}")
        return {"method": method, "layers": layers, "healed": True, "wiki_ppl": None, "c4_ppl": None, "seconds": None,
                "peak_rss_mb": None, "note": f"heal failed: {failure}"}
    return {"method": method, "layers": layers, "healed": True, "wiki_ppl": perplexity(healed, wiki, args.windows),
            "c4_ppl": perplexity(healed, c4, args.c4_windows), "seconds": round(seconds, 1), "peak_rss_mb": round(rss),
            "note": stdout.strip().rsplit(": ", 1)[-1]}


def write_outputs(out, rows, args, depth, quiet=False):
    memory = memory_summary(rows)
    (out / "results.json").write_text(json.dumps({"settings": vars(args), "rows": rows, "memory": memory,
                                                  "peaks": PEAKS}, indent=2))
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = [f"wikitext-2 test: {args.windows} windows of 512; C4 sample: {args.c4_windows} windows of 512; "
             f"calibration {args.nsamples} × {args.seqlen} tokens of wikitext-2 validation (shipped).", "",
             f"Healed rows: `heal` with its default corpora and ridge, {args.heal_nsamples} × 512 tokens; "
             "their wall time and peak RSS are the heal's.", "",
             "| layers | method | healed | wiki ppl | C4 ppl | wall (s) | peak RSS (MB) | note |",
             "|---:|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        secs = "" if r["seconds"] is None else f"{r['seconds']:.1f}"
        rss = "" if r["peak_rss_mb"] is None else str(r["peak_rss_mb"])
        wiki = "—" if r["wiki_ppl"] is None else f"{r['wiki_ppl']:.2f}"
        c4 = "—" if r["c4_ppl"] is None else f"{r['c4_ppl']:.2f}"
        lines.append(f"| {r['layers']} | {r['method']} | {'yes' if r.get('healed') else ''} | {wiki} | {c4} | {secs} | {rss} | "
                     f"{r['note'].replace('|', chr(92) + '|')} |")
    if memory and "prune" in memory:
        p = memory["prune"]
        lines += ["", f"Peak RSS: the largest prune of the run, `{p['what']}`, {p['largest_mb']} MB, is "
                      f"{p['ratio_to_come']:.2f}× `prune --method come` ({memory['come_prune_mb']} MB; goal ≤ 1.10×)."]
        if "heal" in memory:
            h = memory["heal"]
            lines[-1] += (f" The largest heal (`{h['what']}`) peaks at {h['largest_mb']} MB, "
                          f"{h['ratio_to_come']:.2f}× that prune, with {args.heal_nsamples} × 512 calibration tokens "
                          f"against the prunes' {args.nsamples} × {args.seqlen}.")
        if "ppl" in memory:
            e = memory["ppl"]
            lines[-1] += (f" The largest perplexity run ({e['what']}) peaks at {e['largest_mb']} MB: "
                          f"512-token windows, 16 at a time, against calibration windows of {args.seqlen}.")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    if not quiet:
        print("\n".join(lines))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed: no ppl.png")
        return
    plot(out / "ppl.png", rows, depth, Path(args.model).name)


def plot(path, rows, depth, model_name):
    """Left: every method (log scale). Right: only the methods that come within 10× of the
    best perplexity at every depth they reach, healed (solid) and unhealed (dashed), so the
    competitive ones can be told apart."""
    import matplotlib.pyplot as plt
    original = rows[0]["wiki_ppl"]
    series = {}
    for r in rows[1:]:
        if r["wiki_ppl"]:
            series.setdefault((r["method"], bool(r.get("healed"))), []).append((depth - r["layers"], r["wiki_ppl"]))
    best = {}
    for pts in series.values():
        for x, y in pts:
            best[x] = min(best.get(x, y), y)
    close = {k for k, pts in series.items() if all(y <= 10 * best[x] for x, y in pts)}
    methods = sorted({m for m, _ in series})
    colours = {m: f"C{i}" for i, m in enumerate(methods)}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, keys, title in [(axes[0], series.keys(), "every method"),
                            (axes[1], close, "within 10× of the best at every depth")]:
        for method, healed in sorted(keys):
            pts = sorted(series[(method, healed)])
            ax.plot([0] + [p[0] for p in pts], [original] + [p[1] for p in pts], marker="o" if healed else "x",
                    linestyle="-" if healed else "--", color=colours[method],
                    label=f"{method}{' healed' if healed else ''}")
        ax.set_yscale("log")
        ax.set_xlabel("layers removed")
        ax.set_ylabel("wikitext-2 test perplexity (log scale)")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7, ncol=2)
    fig.suptitle(f"{model_name}: perplexity vs layers removed (solid: healed)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def rerender(out):
    """Rewrites table.md, results.csv and ppl.png from results.json (after a change here)."""
    data = json.loads((Path(out) / "results.json").read_text())
    PEAKS.extend(tuple(p) for p in data.get("peaks", []))
    if not PEAKS:  # written before the peaks were saved: the prunes' and heals' are in the rows
        PEAKS.extend((r["peak_rss_mb"], "heal" if r.get("healed") else "prune", f"{r['method']} {r['layers']}")
                     for r in data["rows"] if r["peak_rss_mb"])
    args = argparse.Namespace(**data["settings"])
    write_outputs(Path(out), data["rows"], args, data["rows"][0]["layers"])


if __name__ == "__main__":
    if sys.argv[1:2] == ["--rerender"]:
        rerender(sys.argv[2] if len(sys.argv) > 2 else REPO / "bench/out/compare")
        sys.exit()
    started = time.time()
    main()
    log(f"done in {time.time() - started:.0f} s")
