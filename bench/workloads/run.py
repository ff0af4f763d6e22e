#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Whole-program benchmarks: every workload under every allocator.

Each workload (bench/workloads/*.c, and real programs from Debian packages)
runs under glibc (nothing preloaded), jemalloc, mimalloc, tcmalloc (their
Debian shared objects) and ctxalloc (the preload object from the build),
interleaved: for each repetition, each workload, each allocator. Recorded per
run: wall time, user+sys time, peak RSS (wait4 rusage), for the burst
workload the RSS after its idle period, for the startup workload its VSZ and
RSS, and (not in smoke runs) the core file a crashing program leaves. Outputs must equal the glibc run's
output byte for byte; a difference or a failed run stops with an error.

Usage: run.py BUILD_DIR [--smoke] [--reps N] [--only REGEX] [--out DIR]
  --smoke   tiny scale, 1 repetition, no report: a correctness check (./run.sh test)
"""
import argparse
import datetime
import glob
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LIBDIR = "/usr/lib/x86_64-linux-gnu"
PEERS = [
    ("glibc", None),
    ("jemalloc", LIBDIR + "/libjemalloc.so.2"),
    ("mimalloc", LIBDIR + "/libmimalloc.so.2"),
    ("tcmalloc", LIBDIR + "/libtcmalloc_minimal.so.4"),
]


def find_preload(build):
    for pat in ("libswitch/libctxalloc.so", "libswitch/libctxalloc*.so",
                "**/libctxalloc*.so"):
        hits = sorted(glob.glob(os.path.join(build, pat), recursive=True))
        if hits:
            return os.path.abspath(hits[0])
    return None


def workloads(build, smoke):
    """(name, argv, env extra, input text or None, requires) for every workload."""
    s = "0.01" if smoke else "1"
    out = []
    for w in ["larson", "xmalloc", "mixed", "realloc", "large", "churn", "burst", "frag", "startup"]:
        exe = os.path.join(build, "bench", "workloads", "wl_" + w)
        out.append((w, [exe, s], {}, None, exe))
    exe = os.path.join(build, "bench", "workloads", "wl_latency")
    for t in (1, 2):
        out.append(("latency-%dt" % t, [exe, s, str(t)], {}, None, exe))
    py = shutil.which("python3")
    if py:
        out.append(("python-dicts", [py, os.path.join(HERE, "real", "dicts.py"), "0.05" if smoke else "1"],
                    {"PYTHONMALLOC": "malloc"}, None, py))
    sq = shutil.which("sqlite3")
    if sq:
        n = 10000 if smoke else 1000000
        sql = ("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v REAL);\n"
               "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < %d) "
               "INSERT INTO t SELECT x, 'name-' || x, x * 1.5 FROM c;\n"
               "CREATE INDEX t_name ON t(name);\n"
               "SELECT count(*), sum(v) FROM t WHERE name LIKE 'name-1%%';\n"
               "SELECT name FROM t ORDER BY name DESC LIMIT 3;\n"
               "SELECT count(DISTINCT substr(name, 1, 7)) FROM t;\n" % n)
        out.append(("sqlite3-1M-rows", [sq, ":memory:"], {}, sql, sq))
    lua = shutil.which("lua5.4")
    if lua:
        out.append(("lua-binary-trees", [lua, os.path.join(HERE, "real", "binary_trees.lua"),
                                         "8" if smoke else "16"], {}, None, lua))
    if shutil.which("redis-server") and shutil.which("redis-benchmark") and shutil.which("redis-cli"):
        out.append(("redis", ["redis"], {}, None, "redis-server"))
    return out


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_redis(build, preload, smoke):
    """redis-server under the allocator, redis-benchmark (not preloaded) against it.
    Wall time is redis-benchmark's; CPU and peak RSS are the server's. The
    output compared across allocators is the final key count."""
    port = free_port()
    measure = os.path.join(build, "bench", "workloads", "wl_measure")
    resf = os.path.join(build, "wl_redis.%d.txt" % os.getpid())
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if preload:
        env["LD_PRELOAD"] = preload
    server = subprocess.Popen([measure, resf, shutil.which("redis-server"), "--port", str(port), "--save", "",
                               "--appendonly", "no", "--bind", "127.0.0.1", "--daemonize", "no"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    cli = [shutil.which("redis-cli"), "-p", str(port)]
    for _ in range(200):
        if subprocess.run(cli + ["ping"], capture_output=True, text=True).stdout.strip() == "PONG":
            break
        time.sleep(0.05)
    n = "2000" if smoke else "200000"
    t0 = time.monotonic()
    b = subprocess.run([shutil.which("redis-benchmark"), "-p", str(port), "-q", "-n", n, "-c", "32", "-P", "8",
                        "-d", "256", "-t", "set,get,incr,lpush,rpop,sadd,hset,lrange_100"],
                       capture_output=True, text=True)
    wall = time.monotonic() - t0
    keys = subprocess.run(cli + ["dbsize"], capture_output=True, text=True).stdout.strip()
    subprocess.run(cli + ["shutdown", "nosave"], capture_output=True, text=True)
    _, err = server.communicate(timeout=60)
    try:
        with open(resf) as f:
            code, _, cpu, rss = f.read().split()
        os.unlink(resf)
    except (OSError, ValueError):
        return 127, "", err + "\nno server measurement", wall, 0.0, 0
    rc = b.returncode or (0 if int(code) in (0,) else int(code))
    return rc, "dbsize %s\n" % keys, b.stderr + err, wall, float(cpu), int(rss)


def run_measured(build, argv, env_extra, stdin_text, preload, timeout=900):
    """Run argv through wl_measure; return (rc, stdout, stderr, wall s, user+sys s, peak RSS KiB).
    LD_PRELOAD is set for the program only, not for wl_measure itself (it is
    inherited across exec, but wl_measure allocates nothing that matters)."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.update(env_extra)
    if preload:
        env["LD_PRELOAD"] = preload
    measure = os.path.join(build, "bench", "workloads", "wl_measure")
    resf = os.path.join(build, "wl_measure.%d.txt" % os.getpid())
    p = subprocess.run([measure, resf] + argv, env=env, input=stdin_text, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    try:
        with open(resf) as f:
            code, wall, cpu, rss = f.read().split()
        os.unlink(resf)
    except (OSError, ValueError):
        return 127, p.stdout, p.stderr + "\nwl_measure gave no result", 0.0, 0.0, 0
    return int(code), p.stdout, p.stderr, float(wall), float(cpu), int(rss)


def core_pattern_is_file():
    """Whether the kernel writes cores to a plain file in the working directory."""
    try:
        with open("/proc/sys/kernel/core_pattern") as f:
            pat = f.read().strip()
    except OSError:
        return False
    return bool(pat) and not pat.startswith("|") and "/" not in pat


def run_crash(build, preload):
    """wl_crash in a scratch directory with RLIMIT_CORE unlimited: (seconds to
    die, core apparent KiB, core allocated KiB), or None without a core."""
    import resource
    import tempfile
    exe = os.path.abspath(os.path.join(build, "bench", "workloads", "wl_crash"))
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if preload:
        env["LD_PRELOAD"] = preload
    with tempfile.TemporaryDirectory(dir=build) as d:
        def limits():
            resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        t0 = time.monotonic()
        subprocess.run([exe], env=env, cwd=d, preexec_fn=limits, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=600)
        secs = time.monotonic() - t0
        cores = [os.path.join(d, n) for n in os.listdir(d) if n.startswith("core")]
        if not cores:
            return None
        st = os.stat(cores[0])
        return secs, st.st_size // 1024, st.st_blocks * 512 // 1024


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def write_charts(out, table, meta):
    """workloads.png (wall time) and workloads-rss.png (peak RSS): each
    allocator relative to the best peer on the row (bench/charts.py)."""
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    import charts
    names = list(meta["allocators"])
    timed = [w for w in sorted(table) if any(table[w][a]["wall"] for a in table[w]) and w != "startup"]
    sub = "%s, median of %d interleaved runs" % (meta["date"], meta["repetitions"])
    charts.ratio_chart(os.path.join(out, "workloads.png"), "Whole programs: wall time relative to the best peer",
                       [(w, {a: table[w][a]["wall"] for a in table[w]}) for w in timed], names, sub)
    charts.ratio_chart(os.path.join(out, "workloads-rss.png"), "Whole programs: peak RSS relative to the lowest peer",
                       [(w, {a: table[w][a]["rss"] for a in table[w]}) for w in sorted(table)], names, sub)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default="")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--charts-only", action="store_true",
                    help="redraw the charts from OUT/workloads.json without running anything")
    ap.add_argument("--results-file", default="", help="append PASS/FAIL lines (smoke mode)")
    args = ap.parse_args()
    if args.charts_only:
        with open(os.path.join(args.out, "workloads.json")) as f:
            saved = json.load(f)
        write_charts(args.out, saved["medians"], saved["meta"])
        print("workloads: wrote %s/workloads.png, workloads-rss.png" % args.out)
        return
    reps = 1 if args.smoke else args.reps

    allocators = [(n, lib) for n, lib in PEERS if lib is None or os.path.exists(lib)]
    pre = find_preload(args.build)
    if pre:
        allocators.append(("ctxalloc", pre))
    else:
        sys.stderr.write("workloads: no ctxalloc preload object under %s (libswitch not built?)\n" % args.build)
    wls = [w for w in workloads(args.build, args.smoke) if re.search(args.only, w[0])]

    results = {}  # (workload, allocator) -> list of runs
    reference = {}
    failures = []
    for rep in range(reps):
        for name, argv, env, stdin_text, _ in wls:
            for aname, lib in allocators:
                if name == "redis":
                    rc, out, err, wall, cpu, rss = run_redis(args.build, lib, args.smoke)
                else:
                    rc, out, err, wall, cpu, rss = run_measured(args.build, argv, env, stdin_text, lib)
                m = re.search(r"rss_after_idle_kib=(\d+)", err)
                run = {"wall": wall, "cpu": cpu, "rss": rss, "idle_rss": int(m.group(1)) if m else None}
                m = re.search(r"vsz_kib=(\d+) rss_kib=(\d+)", err)
                if m:
                    run["vsz"], run["start_rss"] = int(m.group(1)), int(m.group(2))
                m = re.search(r"latency: malloc p50=(\d+) p99=(\d+) p999=(\d+) max=(\d+) "
                              r"free p50=(\d+) p99=(\d+) p999=(\d+) max=(\d+)", err)
                if m:
                    run["lat"] = [int(x) for x in m.groups()]
                tag = "%s under %s" % (name, aname)
                if rc != 0:
                    failures.append("%s: exit %d: %s" % (tag, rc, err.strip()[-300:]))
                elif name not in reference:
                    reference[name] = out  # the first run (glibc's) sets the output to compare with
                    results.setdefault((name, aname), []).append(run)
                elif out != reference[name]:
                    failures.append("%s: output differs from the glibc run:\n%s\n---\n%s" % (tag, out[-300:],
                                                                                          reference[name][-300:]))
                else:
                    results.setdefault((name, aname), []).append(run)
                sys.stderr.write("  %-18s %-9s %7.2f s  %8d KiB%s\n" % (name, aname, wall, rss,
                                                                      "" if rc == 0 else "  FAILED"))
                if args.results_file:
                    with open(args.results_file, "a") as f:
                        ok = rc == 0 and (out == reference.get(name))
                        f.write("%s workloads/smoke/%s/%s\n" % ("PASS" if ok else "FAIL", name, aname))
    crashes = {}  # allocator -> list of (seconds, apparent KiB, allocated KiB)
    if not args.smoke and core_pattern_is_file() and os.path.exists(
            os.path.join(args.build, "bench", "workloads", "wl_crash")):
        for rep in range(reps):
            for aname, lib in allocators:
                c = run_crash(args.build, lib)
                if c:
                    crashes.setdefault(aname, []).append(c)
                    sys.stderr.write("  %-18s %-9s %7.2f s  core %d KiB (%d KiB allocated)\n" %
                                     ("crash", aname, c[0], c[1], c[2]))
    if failures:
        sys.stderr.write("workloads: FAILED\n" + "\n".join(failures) + "\n")
        sys.exit(1)
    if args.smoke:
        print("workloads: smoke run ok (%d workloads x %d allocators)" % (len(wls), len(allocators)))
        return

    names = [a for a, _ in allocators]
    peers = [a for a in names if a != "ctxalloc"]
    table = {}
    for (w, a), runs in results.items():
        table.setdefault(w, {})[a] = {
            "wall": median([r["wall"] for r in runs]),
            "cpu": median([r["cpu"] for r in runs]),
            "rss": median([r["rss"] for r in runs]),
            "idle_rss": median([r["idle_rss"] for r in runs]) if runs[0]["idle_rss"] is not None else None,
        }
        if "vsz" in runs[0]:
            table[w][a]["vsz"] = median([r["vsz"] for r in runs])
            table[w][a]["start_rss"] = median([r["start_rss"] for r in runs])
        if "lat" in runs[0]:
            table[w][a]["lat"] = [median([r["lat"][k] for r in runs]) for k in range(8)]
    crash_table = {a: {"seconds": median([c[0] for c in v]), "apparent_kib": median([c[1] for c in v]),
                       "allocated_kib": median([c[2] for c in v])} for a, v in crashes.items()}
    os.makedirs(args.out, exist_ok=True)
    meta = {"date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), "host": platform.node(),
            "cpus": os.cpu_count(), "repetitions": reps,
            "command": "./run.sh bench workloads" if not args.only and args.out == ap.get_default("out")
            else "python3 bench/workloads/run.py " + " ".join(sys.argv[1:]),
            "allocators": {a: (lib or "glibc malloc (no preload)") for a, lib in allocators}}
    with open(os.path.join(args.out, "workloads.json"), "w") as f:
        json.dump({"meta": meta, "medians": table, "crash": crash_table}, f, indent=1)

    L = ["# Whole-program workloads\n",
         "Made by `%s` on %s (%s CPUs), %s; median of %d interleaved runs. "
         "Allocators bound by LD_PRELOAD (glibc: none). Time is wall-clock seconds; RSS is the peak "
         "resident set from wait4 (MiB). \"vs best\" is ctxalloc divided by the best peer on that line "
         "(below 1: ctxalloc is ahead). Real programs: python3 (PYTHONMALLOC=malloc), sqlite3 (1M rows in "
         ":memory:), lua5.4 (binary trees), redis-server with redis-benchmark on loopback (time is the "
         "benchmark client's, RSS the server's). Debian's redis-server links jemalloc, so its \"glibc\" "
         "column is really jemalloc; preloading another allocator replaces its malloc family (redis still "
         "calls jemalloc's mallctl/nallocx for statistics only).\n" % (meta["command"], meta["host"], meta["cpus"],
                                                                 meta["date"], reps)]
    L.append("## Time (s)\n")
    L.append("| workload | " + " | ".join(names) + " | ctxalloc vs best |")
    L.append("|---|" + "---|" * (len(names) + 1))
    ratios, worst = [], (None, 0)
    rss_ok = []
    for w in sorted(table):
        row = table[w]
        cells = ["%.3f" % row[a]["wall"] if a in row else "–" for a in names]
        best = min((row[a]["wall"] for a in peers if a in row), default=None)
        vs = "–"
        # startup measures memory and the latency rows percentiles, not time
        if "ctxalloc" in row and best and w != "startup" and not w.startswith("latency"):
            r = row["ctxalloc"]["wall"] / best
            ratios.append(r)
            vs = "%.2f" % r
            if r > worst[1]:
                worst = (w, r)
        L.append("| %s | %s | %s |" % (w, " | ".join(cells), vs))
    L.append("\n## Peak RSS (MiB)\n")
    L.append("| workload | " + " | ".join(names) + " | ctxalloc vs lowest peer |")
    L.append("|---|" + "---|" * (len(names) + 1))
    for w in sorted(table):
        row = table[w]
        cells = ["%.1f" % (row[a]["rss"] / 1024) if a in row else "–" for a in names]
        vs = "–"
        low = min((row[a]["rss"] for a in peers if a in row), default=None)
        if "ctxalloc" in row and low:
            r = row["ctxalloc"]["rss"] / low
            rss_ok.append((w, r))
            vs = "%.2f" % r
        L.append("| %s | %s | %s |" % (w, " | ".join(cells), vs))
    if "startup" in table:
        row = table["startup"]
        L.append("\n## Start-up: a program that allocates 64 blocks (15 KB) and ends (MiB)\n")
        L.append("| | " + " | ".join(names) + " |")
        L.append("|---|" + "---|" * len(names))
        for key, label in (("vsz", "address space (VSZ)"), ("start_rss", "resident (RSS)")):
            L.append("| %s | %s |" % (label, " | ".join("%.1f" % (row[a][key] / 1024) if a in row and key in row[a]
                                                      else "–" for a in names)))
    lat_rows = [w for w in sorted(table) if w.startswith("latency")]
    lat_goal = []
    for w in lat_rows:
        row = table[w]
        L.append("\n## Latency, %s: malloc and free in a steady mixed workload (ns)\n" % w)
        L.append("| | " + " | ".join(names) + " |")
        L.append("|---|" + "---|" * len(names))
        for k, label in enumerate(("malloc p50", "malloc p99", "malloc p99.9", "malloc max",
                                   "free p50", "free p99", "free p99.9", "free max")):
            L.append("| %s | %s |" % (label, " | ".join("%d" % row[a]["lat"][k] if a in row and "lat" in row[a]
                                                      else "–" for a in names)))
        for k, op in ((2, "malloc"), (6, "free")):
            best = min((row[a]["lat"][k] for a in peers if a in row and "lat" in row[a]), default=None)
            if "ctxalloc" in row and "lat" in row["ctxalloc"] and best is not None:
                lat_goal.append((w, op, row["ctxalloc"]["lat"][k], best))
    if crash_table:
        L.append("\n## A crashing program's core file (8 MiB allocated, then abort)\n")
        L.append("| | " + " | ".join(names) + " |")
        L.append("|---|" + "---|" * len(names))
        for key, label, fmt in (("apparent_kib", "core size (MiB)", lambda v: "%.1f" % (v / 1024)),
                                ("allocated_kib", "core blocks on disk (MiB)", lambda v: "%.1f" % (v / 1024)),
                                ("seconds", "time to die (s)", lambda v: "%.3f" % v)):
            L.append("| %s | %s |" % (label, " | ".join(fmt(crash_table[a][key]) if a in crash_table else "–"
                                                      for a in names)))
    if "burst" in table:
        L.append("\n## Memory returned: RSS after the burst's idle period (MiB)\n")
        L.append("| " + " | ".join(names) + " |")
        L.append("|" + "---|" * len(names))
        L.append("| " + " | ".join("%.1f" % (table["burst"][a]["idle_rss"] / 1024) if a in table["burst"] and
                                   table["burst"][a]["idle_rss"] is not None else "–" for a in names) + " |")
    L.append("\n## Against the goals\n")
    if ratios:
        gm = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        L.append("- geometric mean of ctxalloc / best peer: **%.2f** (goal ≤ 0.90): %s" %
                 (gm, "met" if gm <= 0.90 else "not met"))
        L.append("- worst workload: %s at %.2f× the best peer (goal ≤ 1.5): %s" %
                 (worst[0], worst[1], "met" if worst[1] <= 1.5 else "not met"))
        over = ["%s %.2f" % (w, r) for w, r in rss_ok if r > 1.10]
        L.append("- peak RSS within 1.10× the lowest peer on %d of %d workloads%s" %
                 (len(rss_ok) - len(over), len(rss_ok),
                  "" if not over else " (goal: all): not met: " + ", ".join(over)))
        for w, op, mine, best in lat_goal:
            L.append("- %s %s p99.9: %d ns against the best peer's %d (goal: at or below): %s" %
                     (w, op, mine, best, "met" if mine <= best else "not met"))
    elif "ctxalloc" in names:
        L.append("- no timed workload in this run; no time ratios.")
    else:
        L.append("- ctxalloc's preload object was not available in this run; no ratios.")
    with open(os.path.join(args.out, "workloads.md"), "w") as f:
        f.write("\n".join(L) + "\n")

    write_charts(args.out, table, meta)
    print("workloads: wrote %s/workloads.{json,md,png}" % args.out)


if __name__ == "__main__":
    main()
