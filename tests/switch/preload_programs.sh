#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Real programs under LD_PRELOAD=libctxalloc.so, output compared with
# the same run without it. Usage:
#   preload_programs.sh PRELOAD_SO CONFORMANCE_PLAIN THREADED_PROGRAM LIMITS_PROGRAM MEMORY_PROGRAM [BASE]
# Prints one "ok"/"FAIL" line per program and ends with "N passed, N failed";
# exits non-zero on any failure. Programs that are not installed are skipped.
# BASE is the build's `global` option (default binned): the cases that check
# libbinned's own behaviour (its environment variables, malloc up to a
# limit, calloc of known-zero memory, realloc across tiers, the background
# purge, peak statistics, decay without thrash) print "skip" over another
# base, since glibc or jemalloc answers them there.
set -uo pipefail
so=$(realpath "$1") conf=$(realpath "$2") threaded=$(realpath "$3") limits=$(realpath "$4") memory=$(realpath "$5")
base=${6:-binned}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0

ok() { echo "ok   $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1"; failed=$((failed + 1)); [ -f "${2:-}" ] && head -c 2000 "$2"; }

# compare NAME CMD...: run CMD plain and preloaded (both in $work/run), same output and status.
compare() {
  local name=$1; shift
  (cd "$work/run" && "$@") >"$work/plain.out" 2>&1; local s1=$?
  (cd "$work/run" && LD_PRELOAD=$so "$@") >"$work/pre.out" 2>&1; local s2=$?
  if [ $s1 -eq $s2 ] && cmp -s "$work/plain.out" "$work/pre.out"; then
    ok "$name"
  else
    echo "status $s1 vs $s2" >>"$work/pre.out"
    diff "$work/plain.out" "$work/pre.out" >"$work/diff" 2>&1
    bad "$name" "$work/diff"
  fi
}
have() { command -v "$1" >/dev/null 2>&1; }
# binned_only NAME: true over the binned base; otherwise prints why NAME is skipped.
binned_only() {
  [ "$base" = binned ] && return 0
  echo "skip $1 (libbinned's behaviour; this build's base allocator is $base)"
  return 1
}
mkdir -p "$work/run"

# 0. the preload is really live: the conformance program checks dlsym.
if CONF_EXPECT_SWITCH=1 LD_PRELOAD=$so "$conf" >"$work/conf.out" 2>&1; then ok conformance-under-preload
else bad conformance-under-preload "$work/conf.out"; fi

compare ls ls -la /usr/lib /usr/bin /etc
if have sort; then
  awk 'BEGIN { s = 12345; for (i = 0; i < 300000; i++) { s = (s * 1103515245 + 12345) % 2147483648; print s, "line", i } }' \
    >"$work/run/big.txt"
  compare sort-big-file sort big.txt
  compare sort-numeric-unique sort -n -u -k1,1 big.txt
fi
if have python3; then
  cat >"$work/run/dicts.py" <<'PY'
import gc, hashlib
h = hashlib.sha256()
for round in range(30):
    ds = [{("k%d" % i): [i] * (i % 7) for i in range(j, j + 200)} for j in range(0, 4000, 200)]
    for d in ds:
        h.update(repr(sorted(d.items())[:5]).encode())
    del ds
    gc.collect()
print(h.hexdigest())
PY
  compare python3-dicts env PYTHONMALLOC=malloc python3 dicts.py
fi
if have sqlite3; then
  compare sqlite3-memory sqlite3 :memory: \
    "create table t(a integer, b text); \
     with recursive c(x) as (select 1 union all select x + 1 from c where x < 50000) \
       insert into t select x, printf('row-%08d', x) from c; \
     create index ti on t(b); \
     select count(*), sum(a), max(b) from t where a % 7 = 3;"
fi
if have git; then
  mkdir -p "$work/g1" "$work/g2"
  gitrun() { # dir, preload?
    local d=$1 pre=$2
    (
      cd "$d" || exit 1
      export GIT_AUTHOR_DATE="2026-01-01T00:00:00Z" GIT_COMMITTER_DATE="2026-01-01T00:00:00Z"
      export GIT_CONFIG_NOSYSTEM=1 HOME=$d
      [ "$pre" = 1 ] && export LD_PRELOAD=$so
      git init -q -b main . && seq 1 20000 >numbers.txt && cp "$conf" binary &&
      git add . && git -c user.name=t -c user.email=t@example.org commit -q -m "first commit" &&
      git log --format='%H %s' && git count-objects -v | grep -v size
    )
  }
  gitrun "$work/g1" 0 >"$work/git1.out" 2>&1; gitrun "$work/g2" 1 >"$work/git2.out" 2>&1
  if cmp -s "$work/git1.out" "$work/git2.out" && grep -q "first commit" "$work/git2.out"; then ok git-init-add-commit
  else diff "$work/git1.out" "$work/git2.out" >"$work/diff"; bad git-init-add-commit "$work/diff"; fi
fi
if have gcc; then
  cat >"$work/run/hello.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
int main(void) { long s = 0; for (int i = 0; i < 1000; i++) { int *p = malloc(sizeof *p * (i + 1)); p[i] = i; s += p[i]; free(p); } printf("%ld\n", s); return 0; }
C
  if (cd "$work/run" && LD_PRELOAD=$so gcc -O2 -Wall -o hello hello.c) >"$work/gcc.out" 2>&1 &&
     [ "$("$work/run/hello")" = 499500 ]; then ok gcc-compile
  else bad gcc-compile "$work/gcc.out"; fi
fi
compare threaded-program "$threaded"

# CA_STATS=json at exit: one JSON object on the chosen fd, valid JSON.
if (cd "$work/run" && CA_STATS=json CA_STATS_FD=3 LD_PRELOAD=$so ls >/dev/null 3>"$work/stats.json") &&
   python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["total"]["name"]=="total" and "switch" in d' \
     "$work/stats.json" 2>"$work/stats.err"; then ok ca-stats-json
else bad ca-stats-json "$work/stats.err"; fi
if (cd "$work/run" && CA_STATS=1 LD_PRELOAD=$so ls >/dev/null 2>"$work/stats.txt") &&
   grep -q '^== total$' "$work/stats.txt" && grep -q '^bytes_in_use: ' "$work/stats.txt"; then ok ca-stats-text
else bad ca-stats-text "$work/stats.txt"; fi

# Invalid environment values: one warning line each, the default, the
# program runs (no hang: timeout; no abort: exit status 0).
for kv in CA_BINNED_BACKGROUND=2 CA_BINNED_STARTER=on CA_BINNED_CLASS_RANGE_LOG2=-1 CA_BINNED_CLASS_RANGE_LOG2=4294967295 CA_BINNED_CLASS_RANGE_LOG2=20 \
          CA_BINNED_CLASS_RANGE_LOG2=abc CA_BINNED_CLASS_RANGE_LOG2=40 CA_STATS=yes "CA_STATS=1 CA_STATS_FD=x" \
          "CA_STATS=1 CA_STATS_INHERIT=2"; do
  name=env-${kv%%=*}-${kv#*=}; name=${name// /_}
  case $kv in CA_BINNED_*) binned_only "$name" || continue ;; esac
  if (cd "$work/run" && timeout 30 env $kv LD_PRELOAD=$so echo hi >"$work/env.out" 2>"$work/env.err") &&
     [ "$(cat "$work/env.out")" = hi ] && grep -q '^ctxalloc: warning: .* is invalid (expected .*): using ' "$work/env.err" &&
     [ "$(grep -c '^ctxalloc: warning' "$work/env.err")" = 1 ]; then ok "$name"
  else bad "$name" "$work/env.err"; fi
done

# Resource limits (ulimit -v is RLIMIT_AS, -d RLIMIT_DATA, in KiB). Start-up
# under a small limit: programs run. Malloc up to the limit: NULL with
# ENOMEM, at least 60% of the limit reached for every size (glibc reaches
# 79 to 99%), and malloc works again once everything was freed.
for lim in "v 65536" "d 65536" "v 262144"; do
  set -- $lim
  if (ulimit -"$1" "$2" && cd "$work/run" && LD_PRELOAD=$so ls -la /usr/bin >/dev/null 2>"$work/lim.err" &&
      LD_PRELOAD=$so /bin/true 2>>"$work/lim.err"); then ok "start-under-ulimit-$1-$2"
  else bad "start-under-ulimit-$1-$2" "$work/lim.err"; fi
done
limit_fill() { # flag KiB args...: every size reaches 60% of the limit
  local flag=$1 kib=$2; shift 2
  binned_only "malloc-to-ulimit-$flag-$kib" || return 0
  if (ulimit -"$flag" "$kib" && LD_PRELOAD=$so "$limits" "$@") >"$work/fill.out" 2>&1 &&
     awk -v lim=$((kib / 1024)) '/ MiB$/ { n++; if ($2 < 0.6 * lim) low++ } END { exit !(n > 0 && !low) }' \
       "$work/fill.out"; then ok "malloc-to-ulimit-$flag-$kib ($(tr '\n' ' ' <"$work/fill.out"))"
  else bad "malloc-to-ulimit-$flag-$kib" "$work/fill.out"; fi
}
limit_fill v 262144 64 4096 100000 1048576 16777216
limit_fill d 262144 64 4096 1048576
limit_fill v 1048576 64 1048576
limit_fill v 4194304 -n 1048576 16777216

# calloc: fresh memory is not written again (resident growth of calloc(512
# MiB) below 16 MiB), memory freed dirty reads as zero when calloc'ed again.
if ! binned_only calloc-known-zero; then :
elif LD_PRELOAD=$so "$memory" calloc >"$work/calloc.out" 2>&1; then ok "calloc-known-zero ($(head -n 1 "$work/calloc.out"))"
else bad calloc-known-zero "$work/calloc.out"; fi
# realloc down from the large tier into the size classes: pages go back.
if ! binned_only realloc-shrink-across-tiers; then :
elif LD_PRELOAD=$so "$memory" shrink >"$work/shrink.out" 2>&1; then ok "realloc-shrink-across-tiers ($(cat "$work/shrink.out"))"
else bad realloc-shrink-across-tiers "$work/shrink.out"; fi
# Idle memory goes back without calls (background thread), and not with
# CA_BINNED_BACKGROUND=0 (the test sees the difference).
if ! binned_only idle-memory-returned; then :
elif LD_PRELOAD=$so "$memory" idle >"$work/idle.out" 2>&1; then ok "idle-memory-returned ($(cat "$work/idle.out"))"
else bad idle-memory-returned "$work/idle.out"; fi
if ! binned_only idle-memory-kept-without-background; then :
elif ! CA_BINNED_BACKGROUND=0 LD_PRELOAD=$so "$memory" idle >"$work/idle0.out" 2>&1; then ok "idle-memory-kept-without-background"
else bad idle-memory-kept-without-background "$work/idle0.out"; fi

# glibc's introspection calls answer for the allocator in use.
if ! binned_only mallinfo-malloc_info-mallopt; then :
elif LD_PRELOAD=$so "$memory" introspect >"$work/intro.out" 2>&1; then ok "mallinfo-malloc_info-mallopt ($(cat "$work/intro.out"))"
else bad mallinfo-malloc_info-mallopt "$work/intro.out"; fi

# CA_STATS: the pid in every report; CA_STATS_INHERIT=0 reports for the
# first process only (bash and its children: one object; bash, unlike dash,
# runs exit handlers); CA_STATS_FILE
# with %p names one file per process; the global section is always there.
rm -f "$work"/inh.*
if (cd "$work/run" && CA_STATS=json CA_STATS_INHERIT=0 CA_STATS_FILE="$work/inh.%p" LD_PRELOAD=$so \
      bash -c 'ls >/dev/null; ls >/dev/null; true' 2>"$work/inh.err") &&
   [ "$(ls "$work"/inh.[0-9]* | wc -l)" -eq 1 ] &&
   python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["switch"]["counters"]["pid"] > 0 and "global" in d, d' \
     "$work"/inh.[0-9]* 2>>"$work/inh.err"; then ok ca-stats-first-process-only
else ls "$work" >>"$work/inh.err"; bad ca-stats-first-process-only "$work/inh.err"; fi
rm -f "$work"/st.*
if (cd "$work/run" && CA_STATS=json CA_STATS_FILE="$work/st.%p" LD_PRELOAD=$so bash -c 'ls >/dev/null; ls >/dev/null; true' 2>"$work/file.err") &&
   [ "$(ls "$work"/st.* | wc -l)" -ge 3 ] &&
   python3 -c 'import json,sys,os
for f in sys.argv[1:]:
    d = json.load(open(f)); assert f.endswith(".%d" % d["switch"]["counters"]["pid"]), f' "$work"/st.* 2>>"$work/file.err"; then
  ok "ca-stats-file-per-process ($(ls "$work"/st.* | wc -l) files)"
else ls "$work" >>"$work/file.err"; bad ca-stats-file-per-process "$work/file.err"; fi

# Decommit thrash: a grow/shrink loop makes no more memory-management system
# calls than glibc (counted by strace; skipped without it).
mm_calls() { # FILE: sum of the calls counted in an strace -c summary
  awk '$NF ~ /^(mmap|munmap|madvise|mprotect|brk|mremap)$/ { n += $4 } END { print n + 0 }' "$1"
}
if ! binned_only grow-shrink-system-calls; then :
elif have strace; then
  strace -f -c -o "$work/gs.plain" "$memory" growshrink >/dev/null 2>&1
  LD_PRELOAD=$so strace -f -c -o "$work/gs.pre" "$memory" growshrink >"$work/gs.out" 2>&1; gs=$?
  plain_calls=$(mm_calls "$work/gs.plain") pre_calls=$(mm_calls "$work/gs.pre")
  if [ $gs -eq 0 ] && [ "$plain_calls" -gt 0 ] && [ "$pre_calls" -le "$plain_calls" ]; then
    ok "grow-shrink-system-calls ($pre_calls against glibc's $plain_calls)"
  else
    cat "$work/gs.pre" >>"$work/gs.out"
    bad "grow-shrink-system-calls ($pre_calls against glibc's $plain_calls)" "$work/gs.out"
  fi
else
  echo "skip grow-shrink-system-calls (strace is not installed)"
fi

# Purges off the allocation path: a program that frees 48 MiB of small
# blocks makes at most the calls of one decay pass (2 here: a block and its
# shadow) in its own thread before the background thread starts; from then
# the background thread returns the excess in runs (before: one call pair
# per 64 KiB block as it emptied, about 1,400 calls here).
if ! binned_only free-path-makes-no-purge-calls; then :
elif have strace; then
  LD_PRELOAD=$so strace -f -e trace=madvise -o "$work/fa.trace" "$memory" freeall >"$work/fa.out" 2>&1; fa=$?
  main_pid=$(awk 'NR == 1 { print $1 }' "$work/fa.trace")
  main_calls=$(awk -v p="$main_pid" '$1 == p && /MADV_DONTNEED/ { n++ } END { print n + 0 }' "$work/fa.trace")
  all_calls=$(grep -c MADV_DONTNEED "$work/fa.trace" || true)
  if [ $fa -eq 0 ] && [ "$main_calls" -le 4 ]; then
    ok "free-path-makes-no-purge-calls (main thread $main_calls of $all_calls)"
  else
    cat "$work/fa.trace" | head -50 >>"$work/fa.out"
    bad "free-path-makes-no-purge-calls (main thread $main_calls of $all_calls)" "$work/fa.out"
  fi
else
  echo "skip free-path-makes-no-purge-calls (strace is not installed)"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
