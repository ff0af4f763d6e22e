#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ctxalloc's two commands:
#   ./run.sh test   debug build (checks on, -Werror) + ASan/UBSan build running
#                   every suite, TSan build running the thread tests, then the
#                   install checks (pkg-config consumers in C11 and C++, nm over
#                   every installed library, the subproject consumer).
#                   The last line is "N passed, N failed" over everything run.
#   ./run.sh bench  release build, every benchmark beside glibc, jemalloc,
#                   mimalloc and tcmalloc; writes bench/results/latest.{json,md,png};
#                   then the whole-program workloads (bench/results/workloads.*).
#   ./run.sh bench micro | workloads   only one of the two parts.
# Missing Debian packages are installed with apt-get when run as root.
# Environment: CA_TEST_SCALE (stress length, default 1), CA_BENCH_REPS (5),
# CA_BENCH_MIN_TIME (0.2 s), CA_BENCH_FILTER (regex), JOBS (2).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
JOBS=${JOBS:-2}
OUT=$ROOT/build/results
mkdir -p "$OUT"

need_pkgs() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "run.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "run.sh: missing Debian packages: ${missing[*]}" >&2
    echo "run.sh: install them with: sudo apt-get install ${missing[*]}" >&2
    exit 2
  fi
}

BASE_PKGS=(meson ninja-build pkg-config gcc g++ clang python3 libcriterion-dev libnuma-dev
           libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev libclang-rt-14-dev binutils valgrind
           spin)
BENCH_PKGS=(libbenchmark-dev gnuplot-nox sqlite3 lua5.4 redis-server redis-tools)

setup() { # dir, meson args...
  local dir=$1; shift
  if [ -f "$dir/build.ninja" ]; then
    meson setup --reconfigure "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log"; return 1; }
  else
    rm -rf "$dir"; mkdir -p "$(dirname "$dir")"
    meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log"; return 1; }
  fi
}

# Runs meson test in $1 with extra args; never stops the script (the tally counts).
run_suite() {
  local dir=$1; shift
  echo "== meson test in $dir $*"
  meson test -C "$dir" --num-processes "$JOBS" --print-errorlogs "$@" 2>&1 | tail -n 80 || true
}

cmd_test() {
  need_pkgs "${BASE_PKGS[@]}"
  local t0=$SECONDS
  : >"$OUT/install.txt"
  local logs=()

  echo "== debug build (checks=on, -Werror)"
  setup build/debug --buildtype=debug -Dchecks=on -Dwerror=true -Dtests=true
  ninja -C build/debug -j "$JOBS" >build/debug.build.log 2>&1 || { tail -n 50 build/debug.build.log; echo "0 passed, 1 failed"; exit 1; }
  run_suite build/debug
  logs+=(build/debug/meson-logs/testlog.json)

  echo "== ASan + UBSan build"
  setup build/asan --buildtype=debug -Dchecks=on -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false
  ninja -C build/asan -j "$JOBS" >build/asan.build.log 2>&1 || { tail -n 50 build/asan.build.log; echo "0 passed, 1 failed"; exit 1; }
  ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=1:abort_on_error=0 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 run_suite build/asan
  logs+=(build/asan/meson-logs/testlog.json)

  echo "== TSan build (clang), thread tests"
  CC=clang setup build/tsan --buildtype=debugoptimized -Dchecks=on -Dwerror=true -Db_sanitize=thread -Db_lundef=false
  ninja -C build/tsan -j "$JOBS" >build/tsan.build.log 2>&1 || { tail -n 50 build/tsan.build.log; echo "0 passed, 1 failed"; exit 1; }
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 run_suite build/tsan --suite threads
  logs+=(build/tsan/meson-logs/testlog.json)

  echo "== workloads smoke (every workload, tiny scale, every allocator, outputs compared)"
  : >"$OUT/workloads.txt"
  python3 bench/workloads/run.py build/debug --smoke --results-file "$OUT/workloads.txt" 2>&1 | tail -n 5 || true
  logs+=("$OUT/workloads.txt")

  echo "== model checks (spin): recycler and remote-free queue"
  : >"$OUT/model.txt"
  tests/model/check.sh "$OUT/model.txt" || true
  logs+=("$OUT/model.txt")

  echo "== install checks (release build, pkg-config consumers, nm, subproject)"
  tests/install/check.sh "$ROOT/build/prefix" "$OUT/install.txt" || true
  logs+=("$OUT/install.txt")

  echo "== total ($(( (SECONDS - t0) / 60 )) min)"
  python3 tests/tally.py "${logs[@]}"
}

cmd_bench() {
  local what=${1:-all}
  need_pkgs "${BASE_PKGS[@]}" "${BENCH_PKGS[@]}"
  setup build/release --buildtype=release -Dtests=false -Dbench=true
  ninja -C build/release -j "$JOBS"
  if [ "$what" = all ] || [ "$what" = micro ]; then
    python3 bench/run.py build/release --repetitions "${CA_BENCH_REPS:-5}" \
      --min-time "${CA_BENCH_MIN_TIME:-0.2}" --filter "${CA_BENCH_FILTER:-}"
    cat bench/results/latest.md
  fi
  if [ "$what" = all ] || [ "$what" = workloads ]; then
    python3 bench/workloads/run.py build/release --reps "${CA_BENCH_WL_REPS:-3}"
    cat bench/results/workloads.md
  fi
}

case "${1:-}" in
  test) cmd_test ;;
  bench) cmd_bench "${2:-all}" ;;
  *) echo "usage: ./run.sh test | bench" >&2; exit 2 ;;
esac
