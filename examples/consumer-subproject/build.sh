#!/usr/bin/env bash
# Build and run the subproject consumer against this checkout.
# Usage: build.sh CTXALLOC_SOURCE_DIR OUT_DIR
# The example is copied to OUT_DIR and subprojects/ctxalloc is made a link to
# the checkout, so the wrap's [provide] section is what resolves the dependency
# (meson uses an existing subproject directory instead of fetching the wrap).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$1" && pwd)
out=$2
rm -rf "$out"; mkdir -p "$out"
cp -r "$here/meson.build" "$here/main.c" "$here/subprojects" "$out/"
ln -s "$src" "$out/subprojects/ctxalloc"
meson setup "$out/build" "$out" --wrap-mode=nodownload
ninja -C "$out/build"
"$out/build/consumer"
