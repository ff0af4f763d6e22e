#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Run every benchmark suite side by side with the malloc baselines.

Each bench/<comp>/bench_<comp> executable registers benchmarks named
"<workload>/<impl>". Rows whose impl is "malloc" run once per baseline, in a
separate process with the baseline bound by LD_PRELOAD (glibc: no preload).
Rows "ctxalloc-*" come from the run without preload. Every value is the median
of --benchmark_repetitions runs. Outputs, in bench/results/:
  latest.json  every median (ns per iteration) and the user counters
  latest.md    table: workload, baselines, ctxalloc variant, ratio to jemalloc
  chart-<suite>.png  per component: time relative to the best peer (bench/charts.py)

Usage: bench/run.py BUILD_DIR [--repetitions N] [--min-time S] [--filter REGEX]
       bench/run.py - --charts-only   (redraw the charts from latest.json)
"""
import argparse
import datetime
import glob
import json
import os
import platform
import re
import shutil
import subprocess
import sys

LIBDIR = "/usr/lib/x86_64-linux-gnu"
BASELINES = [
    ("glibc", None),
    ("jemalloc", LIBDIR + "/libjemalloc.so.2"),
    ("mimalloc", LIBDIR + "/libmimalloc.so.2"),
    ("tcmalloc", LIBDIR + "/libtcmalloc_minimal.so.4"),
]
REFERENCE = "jemalloc"
UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def run_suite(exe, preload, filt, reps, min_time):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if preload:
        env["LD_PRELOAD"] = preload
    cmd = [exe, "--benchmark_format=json", "--benchmark_repetitions=%d" % reps,
           "--benchmark_report_aggregates_only=true", "--benchmark_min_time=%s" % min_time]
    if filt:
        cmd.append("--benchmark_filter=" + filt)
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.stderr.write("bench: %s failed (preload=%s):\n%s\n" % (exe, preload, p.stderr[-2000:]))
        return []
    try:
        data = json.loads(p.stdout)
    except ValueError:
        sys.stderr.write("bench: %s is not a benchmark binary (no JSON output); skipped\n" % exe)
        return []
    rows = []
    for b in data.get("benchmarks", []):
        if b.get("aggregate_name") != "median":
            continue
        name = b["run_name"]
        if b.get("error_occurred"):
            continue
        parts = name.split("/")
        if len(parts) < 2:
            continue
        workload = parts[0] + "".join("/" + x for x in parts[2:])
        impl = parts[1]
        counters = {k: v for k, v in b.items()
                    if k not in ("name", "run_name", "run_type", "repetitions", "repetition_index",
                                 "threads", "iterations", "real_time", "cpu_time", "time_unit",
                                 "aggregate_name", "aggregate_unit", "family_index",
                                 "per_family_instance_index")
                    and isinstance(v, (int, float))}
        rows.append({"workload": workload, "impl": impl,
                     "ns": b["real_time"] * UNIT_NS[b.get("time_unit", "ns")],
                     "counters": counters})
    return rows


def fmt_ns(v):
    if v is None:
        return "–"
    if v >= 1e6:
        return "%.2f ms" % (v / 1e6)
    if v >= 1e3:
        return "%.2f µs" % (v / 1e3)
    return "%.2f ns" % v


def short_label(workload):
    """A row label for the charts: the workload without Google Benchmark's suffixes."""
    w = re.sub(r"/(real_time|iterations:\d+|manual_time)", "", workload)
    return w.replace("/threads:", " t")


def write_charts(out, results, meta):
    """One chart per suite: bench/results/<suite>.png (see bench/charts.py).

    ctxalloc's bar is its fastest variant on the row (latest.md lists each).
    """
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import charts
    suites = {}
    for r in results:
        row = suites.setdefault(r["suite"], {}).setdefault(r["workload"], {})
        name = r["allocator"] if r["impl"] == "malloc" else "ctxalloc"
        if name not in row or r["ns"] < row[name]:
            row[name] = r["ns"]
    written = []
    for suite, rows in sorted(suites.items()):
        png = os.path.join(out, "chart-%s.png" % suite)
        series = [n for n in charts.PEERS if any(n in d for d in rows.values())] + ["ctxalloc"]
        if charts.ratio_chart(png, "%s: time per operation relative to the best peer" % suite,
                              [(short_label(w), d) for w, d in sorted(rows.items())], series,
                              "%s, median of %s; ctxalloc = its fastest variant on the row"
                              % (meta["date"], meta["repetitions"])):
            written.append(png)
    return written


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--repetitions", type=int, default=5)
    ap.add_argument("--min-time", default="0.2")
    ap.add_argument("--filter", default="")
    ap.add_argument("--charts-only", action="store_true",
                    help="redraw the charts from OUT/latest.json without running anything")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    args = ap.parse_args()
    if args.charts_only:
        with open(os.path.join(args.out, "latest.json")) as f:
            saved = json.load(f)
        for png in write_charts(args.out, saved["results"], saved["meta"]):
            print("bench: wrote %s" % png)
        return

    exes = sorted(glob.glob(os.path.join(args.build, "bench", "**", "bench_*"), recursive=True))
    # Instruction-count drivers (bench_*_driver, instr_*) are not Google Benchmark suites.
    exes = [e for e in exes if os.path.isfile(e) and os.access(e, os.X_OK) and not e.endswith("_driver")]
    if not exes:
        sys.exit("bench: no benchmark executables under %s/bench" % args.build)
    baselines = [(n, lib) for n, lib in BASELINES if lib is None or os.path.exists(lib)]
    missing = [n for n, lib in BASELINES if lib and not os.path.exists(lib)]
    if missing:
        sys.stderr.write("bench: baselines not installed, skipped: %s\n" % ", ".join(missing))

    results = []  # {suite, workload, impl, allocator, ns, counters}
    for exe in exes:
        suite = os.path.basename(exe)[len("bench_"):]
        for name, lib in baselines:
            sys.stderr.write("bench: %s under %s\n" % (suite, name))
            if name == "glibc":
                filt = args.filter
            else:
                filt = "/malloc($|/)"
            for r in run_suite(exe, lib, filt, args.repetitions, args.min_time):
                if args.filter and not re.search(args.filter, r["workload"] + "/" + r["impl"]):
                    continue
                if r["impl"] == "malloc":
                    r["allocator"] = name
                elif name == "glibc":
                    r["allocator"] = r["impl"]
                else:
                    continue
                r["suite"] = suite
                results.append(r)

    os.makedirs(args.out, exist_ok=True)
    meta = {
        "date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "repetitions": args.repetitions,
        "statistic": "median",
        "command": "./run.sh bench",
        "baselines": {n: (lib or "system malloc (no preload)") for n, lib in baselines},
    }
    with open(os.path.join(args.out, "latest.json"), "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1)

    # Table: one row per (suite, workload, ctxalloc impl); baselines repeated.
    by_wl = {}
    for r in results:
        key = (r["suite"], r["workload"])
        by_wl.setdefault(key, {"base": {}, "ca": {}})
        if r["impl"] == "malloc":
            by_wl[key]["base"][r["allocator"]] = r
        else:
            by_wl[key]["ca"][r["impl"]] = r
    names = [n for n, _ in baselines]
    lines = []
    lines.append("# Benchmark results\n")
    lines.append("Made by `./run.sh bench` on %s (%s CPUs), %s. Each figure is the median of %d repetitions, "
                 "time per benchmark iteration (lower is better). Baselines are bound by LD_PRELOAD in separate "
                 "processes (glibc: none). Ratio = ctxalloc time / jemalloc time (below 1: ctxalloc is faster).\n"
                 % (meta["host"], meta["cpus"], meta["date"], args.repetitions))
    lines.append("| suite | workload | " + " | ".join(names) + " | ctxalloc variant | ctxalloc | ratio to jemalloc |")
    lines.append("|" + "---|" * (len(names) + 5))
    chart = []
    for (suite, wl), d in sorted(by_wl.items()):
        base_cells = [fmt_ns(d["base"][n]["ns"]) if n in d["base"] else "–" for n in names]
        ref = d["base"].get(REFERENCE)
        impls = sorted(d["ca"].items()) or [("–", None)]
        for impl, r in impls:
            ratio = "–"
            if r and ref:
                ratio = "%.2f" % (r["ns"] / ref["ns"])
            extra = ""
            if r and r["counters"]:
                extra = " (" + ", ".join("%s=%.4g" % (k, v) for k, v in sorted(r["counters"].items())
                                         if k != "items_per_second" and k != "bytes_per_second") + ")"
                extra = "" if extra == " ()" else extra
            lines.append("| %s | %s | %s | %s | %s%s | %s |" % (
                suite, wl, " | ".join(base_cells), impl, fmt_ns(r["ns"]) if r else "–", extra, ratio))
        if ref:
            row = [suite + ":" + wl] + [d["base"][n]["ns"] / ref["ns"] if n in d["base"] else 0 for n in names]
            best = min((r["ns"] for r in d["ca"].values()), default=None)
            row.append(best / ref["ns"] if best else 0)
            chart.append(row)
    with open(os.path.join(args.out, "latest.md"), "w") as f:
        f.write("\n".join(lines) + "\n")

    write_charts(args.out, results, meta)
    print("bench: wrote %s/latest.{json,md,png}" % args.out)


if __name__ == "__main__":
    main()
