#!/usr/bin/env python3
"""Learning curves of `frugal rl train --json` runs: a table and one gnuplot PNG.

usage: rl_curves.py --png OUT.png --title T [--tail F] LABEL=FILE.json [LABEL=FILE.json ...]

Prints, per run: frames, seconds, FPS, the mean policy lag, the final mean return of the last
100 episodes, the best curve point, the mean of the curve points in the last `--tail` fraction of
the frames (default 0.5) and, for V-trace runs, the mean truncated weight. Runs with the same
LABEL share a colour in the plot (e.g. one label per setting, several seeds each). The plot is
drawn by gnuplot (mean return of the last 100 episodes against frames); without gnuplot the table
is printed and the plot is said to be skipped."""
import json, shutil, subprocess, sys

def main():
    args, png, title, tail = [], None, "", 0.5
    it = iter(sys.argv[1:])
    for a in it:
        if a == "--png": png = next(it)
        elif a == "--title": title = next(it)
        elif a == "--tail": tail = float(next(it))
        elif "=" in a: args.append(a.split("=", 1))
        else: sys.exit("rl_curves.py: expected LABEL=FILE.json, got '%s'" % a)
    if not args: sys.exit(__doc__)
    runs = []
    for label, path in args:
        d = json.load(open(path))
        pts = [(p["frames"], p["mean_return"]) for p in d["learning_curve"] if p["mean_return"] is not None]
        lag = d["policy_lag_hist"]
        n = sum(c for _, c in lag)
        lag_mean = sum(v * c for v, c in lag) / n if n else float("nan")
        fmax = d["frames"]
        last = [r for f, r in pts if f >= (1 - tail) * fmax]
        runs.append(dict(label=label, path=path, d=d, pts=pts, lag=lag_mean,
                         best=max((r for _, r in pts), default=float("nan")),
                         tailmean=sum(last) / len(last) if last else float("nan")))
    hdr = "| run | seed | frames | seconds | FPS | mean lag | return(100) at end | best point | mean of last %d %% | mean min(1,pi/mu) |" % round(100 * tail)
    print(hdr)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        d = r["d"]
        rho = d.get("vtrace_rho_mean")
        print("| %s | %d | %d | %.1f | %.0f | %.1f | %.1f | %.1f | %.1f | %s |" % (
            r["label"], d["seed"], d["frames"], d["seconds"], d["fps"], r["lag"], d["mean_return_last100"],
            r["best"], r["tailmean"], "%.3f" % rho if rho is not None else "-"))
    labels = []
    for r in runs:
        if r["label"] not in labels: labels.append(r["label"])
    for lab in labels:
        sel = [r for r in runs if r["label"] == lab]
        ends = [r["d"]["mean_return_last100"] for r in sel]
        tails = [r["tailmean"] for r in sel]
        print("%s: %d run(s), return at the end mean %.1f (min %.1f, max %.1f); mean of the last %d %% mean %.1f (min %.1f)" % (
            lab, len(sel), sum(ends) / len(ends), min(ends), max(ends), round(100 * tail), sum(tails) / len(tails), min(tails)))
    if not png: return
    if not shutil.which("gnuplot"):
        print("gnuplot is not installed: %s not drawn" % png)
        return
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    script = ["set terminal pngcairo size 900,540", "set output '%s'" % png.replace("'", "''"),
              "set title '%s'" % title.replace("'", "''"), "set xlabel 'frames'",
              "set ylabel 'mean return (last 100 episodes)'", "set grid", "set key top left"]
    plots, data = [], []
    for r in runs:
        k = labels.index(r["label"])
        first = all(q["label"] != r["label"] for q in runs[:runs.index(r)])
        plots.append("'-' using 1:2 with lines lw 2 lc rgb '%s' %s" % (
            colours[k % len(colours)], "title '%s'" % r["label"].replace("'", "''") if first else "notitle"))
        data.append("\n".join("%d %.4f" % p for p in r["pts"]) + "\ne")
    script.append("plot " + ", ".join(plots))
    subprocess.run(["gnuplot"], input="\n".join(script) + "\n" + "\n".join(data) + "\n", text=True, check=True)
    print("plot: %s" % png)

main()
