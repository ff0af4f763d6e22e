#!/usr/bin/env bash
# Build and run the subproject consumer against this checkout.
# Usage: build.sh CTXALLOC_SOURCE_DIR OUT_DIR
# The example is copied to OUT_DIR with its wrap pointed at the checkout
# (url = the checkout's path, revision = its HEAD): meson clones it as it
# would clone the repository, so the wrap itself is what is tested. Then:
# only the components the consumer links are built, and installing the
# consumer installs none of ctxalloc's files.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$1" && pwd)
out=$2
rm -rf "$out"; mkdir -p "$out/subprojects"
cp "$here/meson.build" "$here/main.c" "$out/"
rev=$(git -C "$src" rev-parse HEAD)
sed -e "s|^url = .*|url = $src|" -e "s|^revision = .*|revision = $rev|" -e "/^depth/d" \
  "$here/subprojects/ctxalloc.wrap" >"$out/subprojects/ctxalloc.wrap"
# --force-fallback-for: the subproject even when an installed ctxalloc is on
# PKG_CONFIG_PATH (the install checks put one there).
meson setup "$out/build" "$out" --force-fallback-for=ctxalloc-core,ctxalloc-bump >"$out/setup.log" 2>&1 ||
  { cat "$out/setup.log"; exit 1; }
ninja -C "$out/build"
"$out/build/consumer"
# Archives are looked up by name anywhere in the subproject's build tree
# (where meson puts each one is not part of the contract).
sub="$out/build/subprojects/ctxalloc"
built() { find "$sub" -name "$1" -type f | grep -q .; }
for lib in libctxalloc-core.a libctxalloc-bump.a; do
  built "$lib" || { echo "consumer-subproject: $lib was not built" >&2; exit 1; }
done
for lib in libctxalloc-source.a libctxalloc-bitset.a libctxalloc-rbtree.a libctxalloc-binned.a \
           libctxalloc-arena.a libctxalloc-switch.a; do
  ! built "$lib" || { echo "consumer-subproject: $lib was built though nothing links it" >&2; exit 1; }
done
DESTDIR="$out/dest" meson install -C "$out/build" >/dev/null
if find "$out/dest" -name '*ctxalloc*' | grep -q .; then
  echo "consumer-subproject: installing the consumer installed ctxalloc's files:" >&2
  find "$out/dest" -name '*ctxalloc*' >&2
  exit 1
fi
echo "consumer-subproject: core and bump built, nothing else; nothing of ctxalloc installed"
