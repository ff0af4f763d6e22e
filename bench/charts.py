# SPDX-License-Identifier: MIT
"""Ratio charts for the benchmark results (gnuplot, PNG, README width).

One chart per table: a group of horizontal bars per row, one bar per
allocator, each bar the allocator's figure divided by the best PEER's figure
on that row (the peers are glibc, jemalloc, mimalloc and tcmalloc; ctxalloc is
not a peer, so it can be below 1). The x axis is logarithmic and centred on 1
(from 1/R to R, R a power of two wide enough for the row values, at most 64);
bars start at the left edge so a bar of exactly 1 (the best peer) is visible,
and every bar carries its value, also when it is clipped at the edge.

Used by bench/run.py (one chart per component suite) and
bench/workloads/run.py (time and peak RSS of the whole programs).
"""
import math
import os
import shutil
import subprocess
import sys

PEERS = ("glibc", "jemalloc", "mimalloc", "tcmalloc")
COLORS = {"glibc": 0x8c8c8c, "jemalloc": 0x4878cf, "mimalloc": 0x6acc65,
          "tcmalloc": 0xd5bb67, "ctxalloc": 0xc44e52}


def _ratios(rows, series):
    """[(label, {name: ratio})] for the rows that have at least one peer."""
    out = []
    for label, vals in rows:
        peers = [vals[p] for p in PEERS if p in series and vals.get(p)]
        if not peers:
            continue
        ref = min(peers)
        if ref <= 0:
            continue
        out.append((label, {n: vals[n] / ref for n in series if vals.get(n)}))
    return out


def ratio_chart(png, title, rows, series, subtitle="", width=900):
    """Write png; rows: [(label, {series name: figure, lower is better})].

    Return True when the chart was written; False (with a message on stderr)
    when gnuplot is missing or failed, or there is nothing to draw.
    """
    data = _ratios(rows, series)
    if not data:
        return False
    if not shutil.which("gnuplot"):
        sys.stderr.write("charts: gnuplot not installed, no %s\n" % png)
        return False
    vals = [v for _, d in data for v in d.values()]
    span = max(max(vals), 1.0 / min(vals), 2.0)
    R = 2.0 ** min(6, max(1, math.ceil(math.log2(span) - 1e-9)))
    lo, hi = 1.0 / R, R
    lines, ytics = [], []
    y = 0.0
    for label, d in data:
        first = y
        for n in series:
            if n not in d:
                continue
            v = d[n]
            shown = min(max(v, lo), hi)
            text = ("%.2f" % v) if v < 100 else ("%.0f" % v)
            if v > hi:
                text += " >"
            at = min(shown, hi / 2.5)  # a clipped bar's label stays inside the plot
            lines.append("%g %g %g %d \"%s\" %g" % (y, shown, lo, COLORS.get(n, 0x444444), text, at))
            y += 1
        ytics.append('"%s" %g' % (label.replace('"', "'"), (first + y - 1) / 2.0))
        y += 0.8
    height = max(260, int(110 + 15 * y))
    dat = png + ".dat.tmp"
    with open(dat, "w") as f:
        f.write("\n".join(lines) + "\n")
    keys = ", ".join("NaN with boxes lc rgb '#%06x' fill solid title '%s'" % (COLORS.get(n, 0x444444), n)
                     for n in series)
    xt = []
    k = lo
    while k <= hi * 1.0001:
        xt.append('"%s" %g' % (("1/%d" % round(1 / k)) if k < 1 else ("%d" % round(k)), k))
        k *= 2
    script = """
set terminal pngcairo size %d,%d noenhanced font ",9"
set output '%s'
set title "%s%s"
set logscale x 2
set xrange [%g:%g]
set xtics (%s)
set yrange [%g:-1] 
set ytics (%s) scale 0
set grid xtics
set arrow from 1,graph 0 to 1,graph 1 nohead lw 2 lc rgb '#333333'
set xlabel "figure / the best peer's figure on the row (log scale; 1 = the best of glibc, jemalloc, mimalloc, tcmalloc; lower is better)"
set key outside top center horizontal
set style fill solid 0.9 noborder
plot '%s' using (($3*$2)**0.5):1:3:2:($1-0.42):($1+0.42):4 with boxxyerror lc rgb variable notitle, \\
     '' using 6:1:5 with labels left offset 0.4,0 notitle, \\
     %s
""" % (width, height, png, title.replace('"', "'"), ("\\n" + subtitle.replace('"', "'")) if subtitle else "",
       lo, hi, ", ".join(xt), y, ", ".join(ytics), dat, keys)
    p = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    os.unlink(dat)
    if p.returncode != 0:
        sys.stderr.write("charts: gnuplot failed for %s: %s\n" % (png, p.stderr))
        return False
    return True
