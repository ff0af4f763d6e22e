#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Model checks with spin (Debian package `spin`), run by ./run.sh test.
# Usage: check.sh RESULTS_FILE
#   recycler.pml            safe: no errors over every interleaving (2 and 3 threads)
#   recycler.pml -DNOGEN    unsafe on purpose: spin must find the ABA counterexample
#   remote_free.pml         safe: no errors (2 and 3 producers)
#   arena_list.pml          safe: no errors (2 threads, 1 and 2 rounds)
#   arena_list.pml -DNOGEN  unsafe on purpose: spin must find the ABA counterexample
#   arena_bins.pml          safe: no errors (2 threads and a fold; without the fold:
#                           2 threads 2 rounds, 3 threads)
#   arena_bins.pml -DNOGEN  unsafe on purpose: spin must find the ABA counterexample
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
results=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pass() { echo "PASS $1" >>"$results"; echo "  ok   $1"; }
fail() { echo "FAIL $1" >>"$results"; echo "  FAIL $1"; sed 's/^/       /' "$2" | tail -n 25; }

if ! command -v spin >/dev/null; then
  echo "FAIL model/spin-missing" >>"$results"; echo "  FAIL spin not installed"; exit 0
fi

# verify NAME MODEL EXPECT(0 errors | >0 errors) DEFINES...
verify() {
  local name=$1 model=$2 expect=$3; shift 3
  local d="$work/$name"
  mkdir -p "$d"
  (cd "$d" && spin -a "$@" "$here/$model" >spin.log 2>&1 &&
     gcc -O2 -DSAFETY -DNOREDUCE -o pan pan.c >>spin.log 2>&1 &&
     ./pan -m100000 >pan.log 2>&1)
  local errors
  errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$d/pan.log" | head -n 1)
  local states
  states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$d/pan.log" | head -n 1)
  if [ -z "$errors" ]; then
    cat "$d/spin.log" >>"$d/pan.log"; fail "model/$name (no result)" "$d/pan.log"; return
  fi
  if { [ "$expect" = 0 ] && [ "$errors" = 0 ]; } || { [ "$expect" = ">0" ] && [ "$errors" != 0 ]; }; then
    pass "model/$name (errors: $errors, states: $states)"
  else
    fail "model/$name (errors: $errors, expected $expect)" "$d/pan.log"
  fi
}

verify recycler-2-threads recycler.pml 0 -DTHREADS=2
verify recycler-3-threads recycler.pml 0 -DTHREADS=3 -DROUNDS=1
verify recycler-without-generation-finds-aba recycler.pml ">0" -DTHREADS=2 -DNOGEN
verify remote-free-2-producers remote_free.pml 0 -DPRODUCERS=2
verify remote-free-3-producers remote_free.pml 0 -DPRODUCERS=3
verify arena-list-2-threads arena_list.pml 0 -DTHREADS=2 -DROUNDS=1
verify arena-list-2-threads-2-rounds arena_list.pml 0 -DTHREADS=2 -DROUNDS=2
verify arena-list-without-tag-finds-aba arena_list.pml ">0" -DTHREADS=2 -DNOGEN
verify arena-bins-2-threads arena_bins.pml 0 -DTHREADS=2 -DROUNDS=1
verify arena-bins-2-threads-2-rounds arena_bins.pml 0 -DTHREADS=2 -DROUNDS=2 -DFOLD=0
verify arena-bins-3-threads arena_bins.pml 0 -DTHREADS=3 -DROUNDS=1 -DFOLD=0
verify arena-bins-without-tag-finds-aba arena_bins.pml ">0" -DTHREADS=2 -DNOGEN
