#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ctxalloc's two commands:
#   ./run.sh test   the matrix: gcc debug (checks on) + ASan/UBSan running every
#                   suite, TSan running the thread tests, clang debug, gcc and
#                   clang release (-O2, checks off); gcc debug with
#                   checks=full (the invariant walks, single-thread suites);
#                   -Dglobal=jemalloc and
#                   -Dglobal=libc (switch unit tests and preload programs),
#                   -Dnuma=disabled (source tests); the NUMA tests in a
#                   two-node qemu guest; valgrind memcheck over the
#                   single-thread tests; every fuzz harness for 30 s; the spin
#                   models; the workloads smoke run; the install checks
#                   (pkg-config consumers in C11 and C++, nm over every installed
#                   library, headers alone, the subproject consumer); the
#                   clang-format check of lib*/ (a file that differs from
#                   .clang-format fails).
#                   The last line is "N passed, N failed" over everything run.
#                   --quick: gcc debug, ASan, TSan, NUMA guest, smoke, install and
#                   the clang-format check only.
#   ./run.sh bench  release build, every benchmark beside glibc, jemalloc,
#                   mimalloc and tcmalloc; writes bench/results/latest.{json,md} and chart-<suite>.png;
#                   then the whole-program workloads (bench/results/workloads.*).
#   ./run.sh bench micro | workloads   only one of the two parts.
# Missing Debian packages are installed with apt-get when run as root.
# Also: ./run.sh fuzz [component] [seconds], ./run.sh stress [minutes],
#       ./run.sh preload -- CMD (run CMD with libctxalloc.so preloaded).
# Environment: CA_TEST_SCALE (stress length, default 1), CA_FUZZ_SECONDS (30), CA_BENCH_REPS (5),
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
           spin strace clang-format)
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

# build_and_test NAME CC SETUP_ARGS... -- TEST_ENV... : one matrix cell; appends its log.
build_cell() {
  local name=$1 cc=$2; shift 2
  local args=() envs=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  envs=("$@")
  echo "== build $name ($cc ${args[*]})"
  CC=$cc setup "build/$name" "${args[@]}" || { echo "FAIL build/$name (configure)" >>"$OUT/builds.txt"; return 1; }
  if ! ninja -C "build/$name" -j "$JOBS" >"build/$name.build.log" 2>&1; then
    tail -n 50 "build/$name.build.log"
    echo "FAIL build/$name (compile)" >>"$OUT/builds.txt"
    return 1
  fi
  echo "PASS build/$name" >>"$OUT/builds.txt"
}

cmd_test() {
  local quick=0
  [ "${1:-}" = --quick ] && quick=1
  need_pkgs "${BASE_PKGS[@]}"
  local t0=$SECONDS
  : >"$OUT/builds.txt"
  local logs=("$OUT/builds.txt")
  local asan_env=(ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=1:abort_on_error=0
                  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1)

  # The matrix: gcc debug (checks on) runs everything; ASan+UBSan; TSan (thread tests);
  # then clang debug, gcc release and clang release (-O2, checks off).
  if build_cell debug gcc --buildtype=debug -Dchecks=on -Dwerror=true; then
    run_suite build/debug; logs+=(build/debug/meson-logs/testlog.json)
  fi
  if build_cell asan gcc --buildtype=debug -Dchecks=on -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false; then
    env "${asan_env[@]}" meson test -C build/asan --num-processes "$JOBS" --print-errorlogs 2>&1 | tail -n 60 || true
    logs+=(build/asan/meson-logs/testlog.json)
  fi
  if build_cell tsan clang --buildtype=debugoptimized -Dchecks=on -Dwerror=true -Db_sanitize=thread -Db_lundef=false; then
    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 run_suite build/tsan --suite threads
    logs+=(build/tsan/meson-logs/testlog.json)
  fi
  if [ $quick = 0 ]; then
    local cell
    for cell in "clang-debug clang --buildtype=debug -Dchecks=on" \
                "gcc-release gcc --buildtype=release -Dchecks=off" \
                "clang-release clang --buildtype=release -Dchecks=off"; do
      set -- $cell
      local name=$1 ccname=$2; shift 2
      if build_cell "$name" "$ccname" "$@" -Dwerror=true; then
        run_suite "build/$name"; logs+=("build/$name/meson-logs/testlog.json")
      fi
    done

    # checks=full: every component's invariant walk after each operation
    # (CA_CHECK_WALK), over the single-thread suites (the walks are exact and
    # want one thread inside; the thread tests run at checks=on above), and
    # the preload programs (malloc to a ulimit runs the walk on the ENOMEM
    # path's trim).
    if build_cell checks-full gcc --buildtype=debug -Dchecks=full -Dwerror=true; then
      run_suite build/checks-full --suite unit --suite preload
      logs+=(build/checks-full/meson-logs/testlog.json)
    fi

    # Configurations users choose: another base allocator behind malloc, no
    # NUMA policies (release builds; the suites those options change). The preload
    # programs run there too; their checks of libbinned's own behaviour
    # (limits, memory return, statistics) print "skip" over another base.
    for cell in "global-jemalloc gcc --buildtype=release -Dglobal=jemalloc -- switch" \
                "global-libc gcc --buildtype=release -Dglobal=libc -- switch" \
                "numa-disabled gcc --buildtype=release -Dnuma=disabled -- source"; do
      local cargs=() suite
      set -- $cell
      local name=$1 ccname=$2; shift 2
      while [ "$1" != -- ]; do cargs+=("$1"); shift; done
      suite=$2
      if build_cell "$name" "$ccname" "${cargs[@]}" -Dwerror=true; then
        run_suite "build/$name" --suite "$suite" --no-suite threads
        logs+=("build/$name/meson-logs/testlog.json")
      fi
    done

    echo "== valgrind memcheck over the single-thread tests (debug build)"
    if [ -f build/debug/build.ninja ]; then
      # valgrind writes to its own log files so that death tests still see
      # exactly the allocator's one-line message on stderr; errors make the
      # test exit 99, and the logs with errors are printed afterwards.
      rm -rf build/debug/memcheck-logs; mkdir -p build/debug/memcheck-logs
      meson test -C build/debug --suite unit --no-suite novalgrind --no-rebuild --num-processes "$JOBS" \
        --logbase memcheck --timeout-multiplier 8 --print-errorlogs \
        --wrapper "valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --trace-children=yes --log-file=$ROOT/build/debug/memcheck-logs/%p.log" \
        2>&1 | tail -n 30 || true
      grep -l "ERROR SUMMARY: [1-9]\|definitely lost: [1-9]\|Invalid \(read\|write\)" build/debug/memcheck-logs/*.log 2>/dev/null |
        head -n 5 | xargs -r tail -n 40 || true
      logs+=(build/debug/meson-logs/memcheck-valgrind.json)  # meson appends the wrapper name
    fi

    echo "== fuzzing (${CA_FUZZ_SECONDS:-30} s per harness)"
    : >"$OUT/fuzz.txt"
    cmd_fuzz all "${CA_FUZZ_SECONDS:-30}" "$OUT/fuzz.txt" || true
    logs+=("$OUT/fuzz.txt")

    echo "== model checks (spin): recycler and remote-free queue"
    : >"$OUT/model.txt"
    tests/model/check.sh "$OUT/model.txt" || true
    logs+=("$OUT/model.txt")
  fi

  echo "== NUMA placement in a two-node qemu guest (gcc debug build)"
  : >"$OUT/numa.txt"
  if (need_pkgs "${NUMA_PKGS[@]}"); then
    tests/numa/guest.sh --build build/debug "$OUT/numa.txt" 2>&1 | tail -n 40 || true
  else
    echo "FAIL numa/guest: packages missing (${NUMA_PKGS[*]})" >>"$OUT/numa.txt"
  fi
  logs+=("$OUT/numa.txt")

  echo "== workloads smoke (every workload, tiny scale, every allocator, outputs compared)"
  : >"$OUT/workloads.txt"
  python3 bench/workloads/run.py build/debug --smoke --results-file "$OUT/workloads.txt" 2>&1 | tail -n 5 || true
  logs+=("$OUT/workloads.txt")

  echo "== install checks (release build, pkg-config consumers, nm, headers alone, subproject)"
  : >"$OUT/install.txt"
  tests/install/check.sh "$ROOT/build/prefix" "$OUT/install.txt" || true
  logs+=("$OUT/install.txt")

  # Every library source as .clang-format writes it: a file that differs is a
  # failure (FAIL line; `clang-format -i FILE` fixes it).
  echo "== clang-format over lib*/"
  : >"$OUT/format.txt"
  tests/format_check.sh --strict "$OUT/format.txt" | tail -n 15 || true
  logs+=("$OUT/format.txt")

  echo "== total ($(( (SECONDS - t0) / 60 )) min)"
  python3 tests/tally.py "${logs[@]}"
}

# ./run.sh fuzz [component|all] [seconds]: libFuzzer harnesses (clang, ASan+UBSan)
# on the committed seed corpus (tests/fuzz/corpus/<comp>); new inputs go to a
# scratch corpus under build/, crashes to build/fuzz-artifacts/.
cmd_fuzz() {
  local which=${1:-all} secs=${2:-60} results=${3:-}
  need_pkgs "${BASE_PKGS[@]}"
  CC=clang setup build/fuzz --buildtype=debugoptimized -Dtests=false -Dfuzz=true -Dchecks=on \
    -Db_sanitize=address,undefined -Db_lundef=false || return 1
  ninja -C build/fuzz -j "$JOBS" >build/fuzz.build.log 2>&1 || { tail -n 40 build/fuzz.build.log; return 1; }
  mkdir -p build/fuzz-artifacts
  local h comp
  for h in build/fuzz/tests/fuzz/fuzz_*; do
    [ -f "$h" ] && [ -x "$h" ] || continue
    comp=${h##*/fuzz_}
    [ "$which" = all ] || [ "$which" = "$comp" ] || continue
    mkdir -p "build/fuzz-corpus/$comp" "tests/fuzz/corpus/$comp"
    echo "-- fuzz_$comp for $secs s"
    if ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=1 "$h" -max_total_time="$secs" -print_final_stats=1 \
         -artifact_prefix="build/fuzz-artifacts/$comp-" "build/fuzz-corpus/$comp" "tests/fuzz/corpus/$comp" \
         >"build/fuzz-$comp.log" 2>&1; then
      grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|cov:" "build/fuzz-$comp.log" | tail -n 3
      [ -n "$results" ] && echo "PASS fuzz/$comp" >>"$results"
    else
      tail -n 30 "build/fuzz-$comp.log"
      [ -n "$results" ] && echo "FAIL fuzz/$comp" >>"$results"
    fi
  done
}

# ./run.sh stress [minutes]: the thread tests at CA_TEST_SCALE=10 with a new
# seed each round, until the time is up; prints operations done and failures
# with their seed.
cmd_stress() {
  local minutes=${1:-10}
  need_pkgs "${BASE_PKGS[@]}"
  build_cell stress gcc --buildtype=debugoptimized -Dchecks=on || return 1
  : >"$OUT/stress.txt"
  local end=$((SECONDS + minutes * 60)) round=0 ops=0 fails=0 t seed n
  while [ $SECONDS -lt $end ]; do
    round=$((round + 1))
    # every thread test except those built to fail (the recycler without its generation)
    for t in $(find build/stress/tests -type f -name 'threads_*' ! -name '*nogen*' -perm -u+x | sort); do
      seed=$((0x5eed + round * 7919))
      if out=$(CA_TEST_SCALE=${CA_STRESS_SCALE:-10} CA_TEST_SEED=$seed "$t" 2>&1); then
        n=$(printf '%s\n' "$out" | sed -n 's/^operations: \([0-9]*\)/\1/p' | tail -n 1)
        ops=$((ops + ${n:-0}))
      else
        fails=$((fails + 1))
        echo "FAIL $t seed=$seed"; printf '%s\n' "$out" | tail -n 15
      fi
      [ $SECONDS -lt $end ] || break
    done
  done
  echo "stress: $round rounds in $minutes min, $ops operations, $fails failures ($(( ops / (minutes > 0 ? minutes : 1) )) operations/min)"
  [ $fails = 0 ]
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

# ./run.sh preload -- CMD...: run CMD with ctxalloc's malloc (release build of
# libctxalloc.so, libbinned behind it) preloaded. CA_STATS=1 or =json prints
# the allocator's statistics at exit.
cmd_preload() {
  [ "${1:-}" = -- ] && shift
  [ $# -gt 0 ] || { echo "usage: ./run.sh preload -- CMD [ARGS...]" >&2; exit 2; }
  need_pkgs "${BASE_PKGS[@]}"
  setup build/release --buildtype=release -Dtests=false >/dev/null || exit 1
  ninja -C build/release -j "$JOBS" >build/release.build.log 2>&1 || { tail -n 30 build/release.build.log; exit 1; }
  LD_PRELOAD="$ROOT/build/release/libswitch/libctxalloc.so${LD_PRELOAD:+:$LD_PRELOAD}" exec "$@"
}

# ./run.sh numa: the NUMA tests in a two-node qemu guest (TCG, 2 x 256 MiB,
# Debian cloud kernel, busybox initramfs); see tests/numa/guest.sh. Prints
# PASS / FAIL lines; CA_NUMA_TIMEOUT (s, default 600) bounds the guest.
NUMA_PKGS=(qemu-system-x86 linux-image-cloud-amd64 busybox-static cpio)
cmd_numa() {
  need_pkgs "${BASE_PKGS[@]}" "${NUMA_PKGS[@]}"
  tests/numa/guest.sh "$@"
}

usage() {
  cat <<'USAGE'
usage: ./run.sh MODE [ARGS]
modes:
  test [--quick]        the test matrix (gcc debug with checks, ASan+UBSan, TSan on the
                        thread tests, clang debug, gcc and clang release, the
                        global=jemalloc, global=libc and numa=disabled builds, valgrind
                        memcheck, fuzzers 30 s each, spin models, workloads smoke run,
                        install checks, clang-format check); last line
                        "N passed, N failed". --quick: gcc debug, ASan, TSan, smoke,
                        install and the clang-format check only
  bench [micro|workloads]
                        release build, every benchmark beside glibc, jemalloc, mimalloc
                        and tcmalloc; writes bench/results/ (micro: latest.*,
                        workloads: workloads.*)
  fuzz [COMPONENT] [S]  one harness (core bump bitset rbtree arena arena_image binned
                        misuse) or all, S seconds each (default 60)
  stress [MINUTES]      the thread tests at CA_TEST_SCALE=10 with new seeds, for MINUTES
                        (default 10)
  preload -- CMD ARGS   run CMD with the release libctxalloc.so preloaded
  numa                  the NUMA tests in a two-node qemu guest (TCG; about 30 s)
  help                  this text
variables:
  JOBS                  parallel jobs for builds and tests (default 2)
  CA_TEST_SEED          seed of the randomised tests (default: fixed per test)
  CA_TEST_SCALE         length multiplier of the stress and thread tests (default 1)
  CA_FUZZ_SECONDS       seconds per fuzz harness in ./run.sh test (default 30)
  CA_BENCH_REPS         repetitions of each micro benchmark (default 5)
  CA_BENCH_MIN_TIME     minimum seconds per micro benchmark (default 0.2)
  CA_BENCH_FILTER       regex selecting micro benchmarks
  CA_BENCH_WL_REPS      interleaved repetitions of the workloads (default 3)
  CA_STRESS_SCALE       CA_TEST_SCALE of ./run.sh stress (default 10)
The libraries' own variables (CA_STATS, CA_BINNED_*) are in README.md.
Missing Debian packages are installed with apt-get when run as root.
USAGE
}

case "${1:-}" in
  -h|--help|help) usage ;;
  test) cmd_test "${2:-}" ;;
  fuzz) cmd_fuzz "${2:-all}" "${3:-60}" ;;
  stress) cmd_stress "${2:-10}" ;;
  preload) shift; cmd_preload "$@" ;;
  numa) shift; cmd_numa "$@" ;;
  bench) cmd_bench "${2:-all}" ;;
  *) usage >&2; exit 2 ;;
esac
