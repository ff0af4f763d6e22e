#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# How far the libraries' sources are from .clang-format, run by ./run.sh test.
# Usage: tests/format_check.sh [--strict] [RESULTS_FILE]
#
# Runs clang-format --dry-run (Debian 12's clang-format 14, the repository's
# .clang-format) over every tracked .c and .h under lib*/ and prints each file
# that differs with its number of differing places, then the totals.
#
# Without --strict a difference is a warning: "WARN format/clang-format: ..."
# (tests/tally.py counts it as passed and lists it under warnings); with
# --strict, as ./run.sh test runs it, it is "FAIL ..." and exit status 1.
# "PASS ..." when no file differs.
# Exit status: 0, or 1 with --strict and differing files.
set -uo pipefail
cd "$(dirname "$0")/.."
strict=0
if [ "${1:-}" = --strict ]; then strict=1; shift; fi
results=${1:-/dev/null}
name=format/clang-format

if ! command -v clang-format >/dev/null; then
  echo "FAIL $name (clang-format not installed)" >>"$results"
  echo "format_check: clang-format not installed (Debian package clang-format)" >&2
  exit 1
fi

mapfile -t files < <(git ls-files 'lib*/*.c' 'lib*/*.h')
# One "FILE:LINE:COL: warning: ..." line per place that clang-format would
# change; counted per file.
counts=$(clang-format --dry-run "${files[@]}" 2>&1 | sed -n 's/^\([^:]*\):[0-9]*:[0-9]*: warning:.*/\1/p' | sort | uniq -c)
ndiff=0 places=0
while read -r n f; do
  [ -n "$f" ] || continue
  ndiff=$((ndiff + 1))
  places=$((places + n))
  printf '  %5d  %s\n' "$n" "$f"
done <<<"$counts"
summary="$ndiff of ${#files[@]} files differ from .clang-format ($places places; $(clang-format --version | sed 's/.*version \([0-9.]*\).*/clang-format \1/'))"
echo "format_check: $summary"
if [ "$ndiff" = 0 ]; then
  echo "PASS $name" >>"$results"
elif [ "$strict" = 1 ]; then
  echo "FAIL $name: $summary" >>"$results"
  exit 1
else
  echo "WARN $name: $summary" >>"$results"
fi
exit 0
