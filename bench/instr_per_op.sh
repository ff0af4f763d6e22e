#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/instr_per_op.sh N1 N2 CMD... : instructions per operation of CMD,
# counted by valgrind's callgrind. CMD contains {n}, replaced by the number
# of operations; it runs at N1 and at N2 and the difference of the two totals
# is divided by N2 - N1, so start-up and exit cancel out. Counts repeat
# exactly for the same binary and inputs, whatever else the machine runs,
# which makes them the figure to compare fast paths with on a noisy machine.
# Example: bench/instr_per_op.sh 100000 200000 build/release/bench/switch/bench_switch_pair_driver {n} switch
set -eu
if [ $# -lt 3 ]; then
  echo "usage: bench/instr_per_op.sh N1 N2 CMD... ({n} is the operation count)" >&2
  exit 2
fi
command -v valgrind >/dev/null || { echo "instr_per_op: valgrind is needed (apt-get install valgrind)" >&2; exit 2; }
n1=$1; n2=$2; shift 2
total() { # N CMD... -> instructions callgrind collected
  local n=$1 arg; shift
  local cmd=()
  for arg in "$@"; do cmd+=("${arg//\{n\}/$n}"); done
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "${cmd[@]}" 2>&1 >/dev/null |
    awk '/Collected :/ { print $NF }'
}
t1=$(total "$n1" "$@")
t2=$(total "$n2" "$@")
if [ -z "$t1" ] || [ -z "$t2" ]; then
  echo "instr_per_op: no instruction count from callgrind (did the command fail?)" >&2
  exit 1
fi
awk -v a="$t1" -v b="$t2" -v n1="$n1" -v n2="$n2" 'BEGIN { printf "%.1f instructions per operation\n", (b - a) / (n2 - n1) }'
