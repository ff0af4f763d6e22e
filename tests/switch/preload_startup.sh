#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Start-up footprint under LD_PRELOAD=libctxalloc.so. Usage:
#   preload_startup.sh PRELOAD_SO STARTUP_PROGRAM [BASE] [MAX_EXTRA_KIB]
# STARTUP_PROGRAM (preload_startup.c) allocates 64 blocks (15 KB) and prints
# its resident set, the preload object's own resident image, whether
# libnuma is mapped, its thread count and the fork handlers registered with
# libc. It runs RUNS times without and
# with the preload, interleaved; the medians are compared:
#   - no libnuma in the process (NUMA policies are system calls);
#   - over libbinned: one thread (no background thread in a program with
#     nothing to give back), no pthread_atfork (the suite's fork handlers
#     wait for a second thread), and the resident set with the preload, less the
#     object's own image, at most MAX_EXTRA_KIB above the plain run's.
# The image is left out because its size is the build's (-O0 with checks
# is about twice -O3) and is the same for any program; what remains is what
# the allocator's set-up and first blocks cost (state, caches, the pages
# of each size class touched, libc code its set-up runs).
# BASE is the build's `global` option (default binned).
set -uo pipefail
so=$(realpath "$1") prog=$(realpath "$2")
base=${3:-binned}
# The bound. Measured (2026-12-03, Debian 12's glibc 2.36, 4 KiB pages,
# runs of this script per build): 64 to 164 KiB, about 100, in a release
# build and in a debug -Dchecks=on build alike, since the default instance
# takes the first slots of every class up to 4 KiB from its starter area
# (libbinned, CA_BINNED_STARTER): the 25 size classes the program touches
# share about 12 pages of it and one shadow page, where each paid 12 KiB
# of its own before (a block page, its shadow page and one page of block
# words and trees: 390 KiB in all then, 412 with CA_BINNED_STARTER=0 now).
# The rest is the allocator's static state, the TLS block and the large
# tier's state. Before that: 1,050 KiB with libnuma loaded, 760 without
# it. The margin over 100, 160 KiB, is the spread of the libc pages mapped
# around the code a program runs: the kernel maps 64 KiB windows of a
# file around each page touched, and where those windows fall depends on
# the address libc is loaded at (ASLR), so single runs move by 100-150 KiB
# in either direction and the medians of 9 still by about 65.
max_extra=${4:-260}
runs=9
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

field() { # NAME LINE
  sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" <<<"$2"
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

: >"$work/plain" ; : >"$work/pre"
for ((i = 0; i < runs; i++)); do
  env -u LD_PRELOAD "$prog" >>"$work/plain" || { echo "FAIL the program failed without the preload"; exit 1; }
  LD_PRELOAD=$so "$prog" >>"$work/pre" || { echo "FAIL the program failed under the preload"; exit 1; }
done
failed=0
plain_rss=$(while read -r l; do field rss_kib "$l"; done <"$work/plain" | median)
pre_rss=$(while read -r l; do echo $(($(field rss_kib "$l") - $(field image_kib "$l"))); done <"$work/pre" | median)
image=$(while read -r l; do field image_kib "$l"; done <"$work/pre" | median)
extra=$((pre_rss - plain_rss))
echo "plain: ${plain_rss} KiB; preload: $((pre_rss + image)) KiB, of which ${image} KiB its own image;" \
     "set-up and first blocks: ${extra} KiB (bound ${max_extra})"

if grep -q 'libnuma=1' "$work/pre"; then
  echo "FAIL libnuma is loaded under the preload"; failed=1
else
  echo "ok   no libnuma under the preload"
fi
if [ "$base" != binned ]; then
  echo "skip thread count and resident bound (libbinned's; this build's base allocator is $base)"
else
  if grep -qv 'threads=1 ' "$work/pre"; then
    echo "FAIL a thread started in a program with nothing to give back:"; grep -v 'threads=1 ' "$work/pre" | head -n 3
    failed=1
  else
    echo "ok   one thread"
  fi
  if grep -qv 'atfork=0$' "$work/pre"; then
    echo "FAIL fork handlers registered with libc in a program of one thread:"; grep -v 'atfork=0$' "$work/pre" | head -n 3
    failed=1
  else
    echo "ok   no pthread_atfork in a program of one thread"
  fi
  if [ "$extra" -le "$max_extra" ]; then
    echo "ok   start-up resident set within ${max_extra} KiB of the plain program's"
  else
    echo "FAIL start-up resident set ${extra} KiB above the plain program's (bound ${max_extra})"
    cat "$work/plain" "$work/pre"
    failed=1
  fi
fi
exit $failed
