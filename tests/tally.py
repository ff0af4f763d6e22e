#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Sum the results of every suite ./run.sh ran into one line.

Arguments: meson testlog.json files and plain result files. A testlog entry
counts its sub-tests: Criterion's "Synthesis: Tested: T | Passing: P |
Failing: F | Crashing: C" line, or the "N passed, N failed" line of the plain
thread-test runner; any other test counts as one. A test whose process failed
(crash, timeout, sanitizer report) without reporting a failed sub-test counts
one more failure. A plain result file has lines "PASS <name>" / "FAIL <name>",
and "WARN <name>: <why>" for a check that reports without failing yet (the
clang-format check, tests/format_check.sh): it counts as passed and is
listed under the warnings before the last line.
The last line printed is "N passed, N failed".
"""
import json
import re
import sys

SYN = re.compile(r"Synthesis: Tested: (\d+) \| Passing: (\d+) \| Failing: (\d+) \| Crashing: (\d+)")
TT = re.compile(r"^(\d+) passed, (\d+) failed\s*$", re.M)


def count_entry(d):
    out = (d.get("stdout") or "") + "\n" + (d.get("stderr") or "")
    ok = d.get("result") in ("OK", "EXPECTEDFAIL")
    if d.get("result") == "SKIP":
        return 0, 0
    if d.get("result") == "EXPECTEDFAIL":
        return 1, 0  # a test that must fail (e.g. a model without its guard) did
    m = SYN.findall(out)
    if m:
        _, p, f, c = map(int, m[-1])
        p, f = p, f + c
    else:
        m = TT.findall(out)
        if m:
            p, f = map(int, m[-1])
        else:
            p, f = (1, 0) if ok else (0, 1)
    if not ok and f == 0:
        f = 1
    return p, f


def main():
    total_p = total_f = 0
    warnings = []
    for path in sys.argv[1:]:
        p_sum = f_sum = 0
        failed = []
        try:
            with open(path) as fh:
                lines = fh.readlines()
        except OSError:
            print("%s: missing (counted as 1 failed)" % path)
            total_f += 1
            continue
        if path.endswith(".json"):
            for line in lines:
                if not line.strip():
                    continue
                d = json.loads(line)
                p, f = count_entry(d)
                p_sum += p
                f_sum += f
                if f:
                    failed.append(d["name"])
        else:
            for line in lines:
                if line.startswith("PASS "):
                    p_sum += 1
                elif line.startswith("WARN "):
                    p_sum += 1
                    warnings.append(line[5:].strip())
                elif line.startswith("FAIL "):
                    f_sum += 1
                    failed.append(line[5:].strip())
        print("%s: %d passed, %d failed" % (path, p_sum, f_sum))
        for n in failed:
            print("  failed: %s" % n)
        total_p += p_sum
        total_f += f_sum
    for w in warnings:
        print("warning (counted as passed): %s" % w)
    print("%d passed, %d failed" % (total_p, total_f))
    return 1 if total_f else 0


if __name__ == "__main__":
    sys.exit(main())
