#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs the NUMA tests in a qemu guest with two NUMA nodes (./run.sh numa).
#
# Usage: tests/numa/guest.sh [--build DIR] [RESULTS_FILE]
#   --build DIR    a configured build directory to take the test programs
#                  from (default build/numa, set up here: debugoptimized,
#                  checks on); only the programs below are built.
#   RESULTS_FILE   PASS / FAIL lines are appended to it (./run.sh test's tally).
#
# The guest: qemu-system-x86_64 under TCG (no KVM needed), two CPUs and two
# NUMA nodes of 256 MiB each (CPU 0 on node 0, CPU 1 on node 1), the Debian
# kernel from /boot (linux-image-cloud-amd64 is preferred: it boots fastest),
# and an initramfs built here: busybox (busybox-static), tests/numa/init, the
# test programs and the shared libraries they load (ldd). The init script
# runs every program, prints its lines on the serial console and powers off;
# this script reads the console. The guest is killed after CA_NUMA_TIMEOUT
# seconds (default 600), and a guest that did not finish is a failure.
#
# Results: "PASS numa/..." / "FAIL numa/..." lines; a SKIP inside the guest
# is a failure (the guest has two nodes, so nothing may skip there), and so
# is a guest that printed no result at all. Exit status 0 when all passed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$root/build/numa
if [ "${1:-}" = --build ]; then
  build=$(cd "$2" && pwd) || exit 2
  shift 2
fi
results=${1:-}
work=$root/build/numa-guest
timeout_s=${CA_NUMA_TIMEOUT:-600}
t0=$SECONDS

result() { # LINE: print it and append it to the results file
  echo "$1"
  [ -n "$results" ] && echo "$1" >>"$results"
  return 0
}
die() { result "FAIL numa/guest: $1"; exit 1; }

for tool in qemu-system-x86_64 cpio busybox meson ninja; do
  command -v "$tool" >/dev/null || [ -x "/bin/$tool" ] || die "$tool not found (./run.sh numa installs it)"
done
kernel=$(ls -1v /boot/vmlinuz-*-cloud-amd64 2>/dev/null | tail -n 1)
[ -n "$kernel" ] || kernel=$(ls -1v /boot/vmlinuz-* 2>/dev/null | tail -n 1)
[ -n "$kernel" ] && [ -r "$kernel" ] || die "no readable kernel in /boot (Debian package linux-image-cloud-amd64)"
busybox=$(command -v busybox || echo /bin/busybox)
file -L "$busybox" 2>/dev/null | grep -q "statically linked" ||
  ldd "$busybox" 2>&1 | grep -q "not a dynamic" || die "$busybox is not static (Debian package busybox-static)"

# --- the test programs -------------------------------------------------------
progs=(tests/numa/numa_placement tests/numa/numa_switch tests/numa/numa_auto tests/source/test_source_numa tests/switch/test_switch_node)
if [ ! -f "$build/build.ninja" ]; then
  echo "== configure $build"
  CC=${CC:-gcc} meson setup "$build" --buildtype=debugoptimized -Dchecks=on >"$build.setup.log" 2>&1 ||
    { tail -n 30 "$build.setup.log"; die "meson setup failed"; }
fi
echo "== build the NUMA test programs in $build"
ninja -C "$build" -j "${JOBS:-2}" "${progs[@]}" >"$work.build.log" 2>&1 ||
  { tail -n 40 "$work.build.log"; die "build failed"; }

# --- the initramfs -----------------------------------------------------------
rm -rf "$work"
mkdir -p "$work/root"/{bin,tests,proc,sys,dev,tmp}
cp "$busybox" "$work/root/bin/busybox"
cp "$here/init" "$work/root/init"
chmod 755 "$work/root/init"
for p in "${progs[@]}"; do
  [ -x "$build/$p" ] || die "$build/$p was not built (libnuma or a component missing?)"
  cp "$build/$p" "$work/root/tests/"
  # every shared object the program loads, at the same path in the guest
  ldd "$build/$p" | grep -o '/[^ ]*' | while read -r lib; do
    mkdir -p "$work/root$(dirname "$lib")"
    cp -L "$lib" "$work/root$lib"
  done
done
(cd "$work/root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) >"$work/initramfs.cpio" ||
  die "cpio failed"

# --- the guest -----------------------------------------------------------------
echo "== boot $(basename "$kernel") under TCG: 2 nodes x 256 MiB, 2 CPUs (timeout ${timeout_s} s)"
log=$work/console.log
tb=$SECONDS
timeout --kill-after=10 "$timeout_s" qemu-system-x86_64 -M pc -accel tcg -cpu max -smp 2 -m 512M \
  -object memory-backend-ram,id=m0,size=256M -object memory-backend-ram,id=m1,size=256M \
  -numa node,nodeid=0,cpus=0,memdev=m0 -numa node,nodeid=1,cpus=1,memdev=m1 \
  -kernel "$kernel" -initrd "$work/initramfs.cpio" \
  -append "console=ttyS0 quiet loglevel=1 panic=-1" \
  -display none -nodefaults -serial stdio -no-reboot </dev/null >"$log" 2>&1
qrc=$?
guest_s=$((SECONDS - tb))
tr -d '\r' <"$log" >"$log.txt"

grep -E '^NUMA-GUEST|^INFO numa/' "$log.txt" | sed 's/^/  /'
npass=0 nfail=0
while IFS= read -r line; do
  case $line in
    "PASS numa/"*) result "$line"; npass=$((npass + 1)) ;;
    "FAIL numa/"*) result "$line"; nfail=$((nfail + 1)) ;;
    "SKIP numa/"*) result "FAIL ${line#SKIP } (skipped in the two-node guest)"; nfail=$((nfail + 1)) ;;
  esac
done < <(grep -E '^(PASS|FAIL|SKIP) numa/' "$log.txt")
if ! grep -q '^NUMA-GUEST-DONE' "$log.txt"; then
  if [ $qrc = 124 ] || [ $qrc = 137 ]; then
    result "FAIL numa/guest: no end after ${timeout_s} s (killed)"
  else
    result "FAIL numa/guest: qemu exited $qrc before the tests ended"
  fi
  nfail=$((nfail + 1))
  tail -n 40 "$log.txt" | sed 's/^/  | /'
elif [ $nfail -gt 0 ]; then
  grep -vE '^(PASS|SKIP) numa/' "$log.txt" | grep -v '^\s*$' | tail -n 60 | sed 's/^/  | /'
fi
[ $npass -gt 0 ] || { result "FAIL numa/guest: no test passed"; nfail=$((nfail + 1)); }
echo "numa guest: $npass passed, $nfail failed; guest ${guest_s} s, total $((SECONDS - t0)) s (console: ${log#$root/}.txt)"
[ $nfail = 0 ]
