#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Where real programs spend their allocator instructions, side by side.

Runs python3 (PYTHONMALLOC=malloc), lua5.4, perl and sqlite3 on small
allocation-heavy inputs under callgrind, once per allocator (glibc without a
preload; jemalloc, mimalloc, tcmalloc and ctxalloc by LD_PRELOAD), and counts
instructions (Ir): the whole program's, and the allocator's own (every
function of the preloaded object; for glibc the functions of libc's malloc/
sources). Instruction counts do not depend on the machine's load, so this
runs where timing is too noisy; they do not see cache and TLB misses or page
faults (the timed workloads in bench/workloads/run.py do).

Usage: bench/real_callgrind.py BUILD_DIR [--out DIR] [--only REGEX]
Writes DIR/real-callgrind.{json,md} (default bench/results).
"""
import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
LIBDIR = "/usr/lib/x86_64-linux-gnu"
PEERS = [("glibc", None), ("jemalloc", LIBDIR + "/libjemalloc.so.2"), ("mimalloc", LIBDIR + "/libmimalloc.so.2"),
         ("tcmalloc", LIBDIR + "/libtcmalloc_minimal.so.4")]

PERL = r'''
my %h; my @keep; my $t = 0;
for my $r (1..4) {
  %h = ();
  for my $i (1..20000) { my $k = "key-$r-$i"; $h{$k} = [$i, "v" x ($i % 40), {n => $i}]; }
  for my $k (keys %h) { $t += length($k) + $h{$k}[0]; }
  my $s = join(",", map { $_ x 3 } 1..5000); my @w = split /,/, $s; $t += @w;
  push @keep, substr($s, 0, 100 + $r);
}
print "perl: $t\n";
'''

SQL = ("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v REAL);\n"
       "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 30000) "
       "INSERT INTO t SELECT x, 'name-' || x, x * 1.5 FROM c;\n"
       "CREATE INDEX t_name ON t(name);\n"
       "SELECT count(*), sum(v) FROM t WHERE name LIKE 'name-1%';\n"
       "SELECT count(DISTINCT substr(name, 1, 7)) FROM t;\n")


def programs():
    out = []
    py = shutil.which("python3")
    if py:
        # The interpreter itself, not a wrapper script that execs it (a
        # version manager's shim): callgrind follows no exec.
        py = subprocess.run([py, "-c", "import sys; print(sys.executable)"], stdout=subprocess.PIPE, text=True,
                            check=True).stdout.strip()
        py = os.path.realpath(py)
        out.append(("python3 dicts", [py, os.path.join(HERE, "workloads", "real", "dicts.py"), "0.05"],
                    {"PYTHONMALLOC": "malloc"}, None))
    lua = shutil.which("lua5.4")
    if lua:
        out.append(("lua5.4 binary trees", [lua, os.path.join(HERE, "workloads", "real", "binary_trees.lua"), "11"],
                    {}, None))
    perl = shutil.which("perl")
    if perl:
        out.append(("perl hashes and strings", [perl, "-e", PERL], {}, None))
    sq = shutil.which("sqlite3")
    if sq:
        out.append(("sqlite3 30k rows", [sq, ":memory:"], {}, SQL))
    return out


ENTRIES = {"malloc", "free", "calloc", "realloc", "cfree", "memalign", "posix_memalign", "aligned_alloc", "valloc",
           "pvalloc", "malloc_usable_size", "reallocarray"}
LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\S.*?)\s+\[(.*)\]\s*$")


def count(cmd, env_extra, stdin, preload, tmp):
    out_file = os.path.join(tmp, "cg.out")
    env = dict(os.environ)
    env.update(env_extra)
    env.pop("LD_PRELOAD", None)
    vg = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out_file]
    if preload:
        env["LD_PRELOAD"] = preload
    r = subprocess.run(vg + cmd, env=env, input=stdin, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise RuntimeError("%s failed: %s" % (cmd[0], r.stderr[-400:]))
    ann = subprocess.run(["callgrind_annotate", "--threshold=100", out_file], stdout=subprocess.PIPE, text=True,
                         check=True).stdout
    total = alloc = 0
    for ln in ann.splitlines():
        if "PROGRAM TOTALS" in ln:
            total = int(ln.split()[0].replace(",", ""))
            continue
        m = LINE.match(ln)
        if not m:
            continue
        ir, fn, obj = int(m.group(1).replace(",", "")), m.group(2), m.group(3)
        if preload:
            # Some objects' entry points are aliases callgrind cannot place
            # in a file ("???:free [???]", Debian's tcmalloc): counted by name.
            name = fn.split(":", 1)[-1]
            if os.path.realpath(obj) == os.path.realpath(preload) or (obj == "???" and name in ENTRIES):
                alloc += ir
        elif obj.endswith("libc.so.6") and fn.startswith("./malloc/"):
            alloc += ir
    os.remove(out_file)
    return total, alloc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--only", default=None)
    a = ap.parse_args()
    ours = os.path.join(os.path.abspath(a.build), "libswitch", "libctxalloc.so")
    if not os.path.exists(ours):
        sys.exit("real_callgrind: %s is missing (build first)" % ours)
    allocs = [p for p in PEERS if p[1] is None or os.path.exists(p[1])] + [("ctxalloc", ours)]
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, cmd, env, stdin in programs():
            if a.only and not re.search(a.only, name):
                continue
            res[name] = {}
            for an, so in allocs:
                t, al = count(cmd, env, stdin, so, tmp)
                res[name][an] = {"total": t, "allocator": al}
                print("  %-26s %-9s total %8.1f M  allocator %8.1f M" % (name, an, t / 1e6, al / 1e6), flush=True)
    os.makedirs(a.out, exist_ok=True)
    old = os.path.join(a.out, "real-callgrind.json")
    if a.only and os.path.exists(old):
        # --only re-measures some programs: the others keep their rows
        with open(old) as f:
            kept = json.load(f).get("results", {})
        kept.update(res)
        res = kept
    when = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")
    command = "python3 bench/real_callgrind.py " + " ".join(sys.argv[1:])
    with open(os.path.join(a.out, "real-callgrind.json"), "w") as f:
        json.dump({"meta": {"date": when, "command": command}, "results": res}, f, indent=1)
    names = [an for an, _ in allocs]
    md = ["# Real programs under callgrind", "",
          "Made by `%s`, %s. Instructions (millions) of the whole program, and in parentheses those of the "
          "allocator itself (the preloaded object's functions; glibc: libc's malloc sources). \"vs best\": "
          "ctxalloc's allocator instructions over the lowest peer's." % (command, when), "",
          "| program | " + " | ".join(names) + " | vs best |", "|---|" + "---|" * (len(names) + 1)]
    for prog, row in res.items():
        cells = ["%.0f (%.1f)" % (row[n]["total"] / 1e6, row[n]["allocator"] / 1e6) for n in names]
        peers = [row[n]["allocator"] for n in names if n != "ctxalloc" and row[n]["allocator"] > 0]
        ratio = "%.2f" % (row["ctxalloc"]["allocator"] / min(peers)) if peers else "–"
        md.append("| %s | %s | %s |" % (prog, " | ".join(cells), ratio))
    with open(os.path.join(a.out, "real-callgrind.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("real_callgrind: wrote %s/real-callgrind.{json,md}" % a.out)


if __name__ == "__main__":
    main()
