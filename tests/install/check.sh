#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install checks, run by ./run.sh test. Usage: check.sh PREFIX RESULTS_FILE
#  1. release build with -Werror installed into PREFIX;
#  2. nm over every installed static library: every defined global symbol
#     starts with ca_; libctxalloc-switch-override.a may also define exactly
#     the malloc family; the preload object exports only the malloc family
#     (plus ca_ names);
#  3. for every installed ctxalloc-<comp>.pc with tests/install/use-<comp>.c:
#     that program built as C11 and as C++17 against the installed headers
#     with `pkg-config --cflags --libs --static`, and as C11 with plain
#     `pkg-config --cflags --libs` (every library is static: the plain line
#     must link too), and run;
#  3b. every installed header compiled alone (gcc and clang -std=c11, g++ -std=c++11;
#     -Wall -Wextra -Werror -pedantic);
#  4. examples/consumer-pkgconfig and examples/consumer-subproject built and run.
# Each check appends "PASS name" or "FAIL name" to RESULTS_FILE.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
prefix=$1 results=$2
work=$root/build/install-check
rm -rf "$prefix" "$work"; mkdir -p "$work"
JOBS=${JOBS:-2}

pass() { echo "PASS $1" >>"$results"; echo "  ok   $1"; }
fail() { echo "FAIL $1" >>"$results"; echo "  FAIL $1"; [ -n "${2:-}" ] && sed 's/^/       /' "$2" | tail -n 30; return 0; }

# 1. install
if meson setup "$work/build" "$root" --buildtype=release -Dtests=false -Dwerror=true --prefix="$prefix" ${CA_INSTALL_SETUP_ARGS:-} \
     >"$work/setup.log" 2>&1 && ninja -C "$work/build" -j "$JOBS" >"$work/build.log" 2>&1 &&
   meson install -C "$work/build" >"$work/install.log" 2>&1; then
  pass "install/release-build-and-install"
else
  fail "install/release-build-and-install" "$work/build.log"
  cat "$work/setup.log" | tail -n 20
  exit 1
fi
pcdir=$(dirname "$(find "$prefix" -name 'ctxalloc-core.pc' | head -n 1)")
export PKG_CONFIG_PATH=$pcdir
libdir=$(pkg-config --variable=libdir ctxalloc-core)

# 2. nm: defined global symbols must start with ca_
family='malloc|calloc|realloc|reallocarray|free|posix_memalign|aligned_alloc|memalign|valloc|pvalloc'
family+='|malloc_usable_size|malloc_trim|free_sized|free_aligned_sized'
family+='|mallinfo|mallinfo2|malloc_stats|malloc_info|mallopt'
for lib in "$libdir"/libctxalloc-*.a; do
  name=$(basename "$lib" .a)
  allowed='^ca_'
  # The override library exists to define the malloc family (with C23's
  # sized frees and glibc's introspection calls), and only that.
  [ "$name" = libctxalloc-switch-override ] && allowed="^(ca_|($family)\$)"
  bad=$(nm -g --defined-only "$lib" 2>/dev/null | awk 'NF==3 {print $3}' | grep -Ev "$allowed" || true)
  if [ -z "$bad" ]; then
    pass "install/nm/$name"
  else
    echo "$bad" >"$work/nm-$name.txt"
    fail "install/nm/$name" "$work/nm-$name.txt"
  fi
done

# 2b. the preload object's dynamic symbols
for so in "$libdir"/libctxalloc*.so; do
  [ -f "$so" ] || continue
  bad=$(nm -D --defined-only "$so" 2>/dev/null | awk 'NF==3 {print $3}' | sed 's/@.*//' |
        grep -Ev "^(ca_|($family|cfree)\$)" || true)
  if [ -z "$bad" ]; then pass "install/nm/$(basename "$so")"; else
    echo "$bad" >"$work/nm-so.txt"; fail "install/nm/$(basename "$so")" "$work/nm-so.txt"; fi
done

# 3. each component through its pkg-config file, C11 and C++17
for pc in "$pcdir"/ctxalloc-*.pc; do
  comp=$(basename "$pc" .pc); comp=${comp#ctxalloc-}
  src=$here/use-$comp.c
  [ -f "$src" ] || { echo "FAIL install/use-$comp (no tests/install/use-$comp.c)" >>"$results"; continue; }
  flags=$(pkg-config --cflags --libs --static "ctxalloc-$comp")
  if cc -std=c11 -Wall -Wextra -Werror -pedantic-errors -D_GNU_SOURCE -o "$work/use-$comp-c" "$src" $flags \
       >"$work/use-$comp-c.log" 2>&1 && "$work/use-$comp-c" >>"$work/use-$comp-c.log" 2>&1; then
    pass "install/use-$comp/c11"
  else
    fail "install/use-$comp/c11" "$work/use-$comp-c.log"
  fi
  if c++ -std=c++17 -Wall -Wextra -Werror -D_GNU_SOURCE -x c++ -o "$work/use-$comp-cxx" "$src" -x none $flags \
       >"$work/use-$comp-cxx.log" 2>&1 && "$work/use-$comp-cxx" >>"$work/use-$comp-cxx.log" 2>&1; then
    pass "install/use-$comp/c++17"
  else
    fail "install/use-$comp/c++17" "$work/use-$comp-cxx.log"
  fi
  plain=$(pkg-config --cflags --libs "ctxalloc-$comp")
  if cc -std=c11 -Wall -Wextra -Werror -pedantic-errors -D_GNU_SOURCE -o "$work/use-$comp-plain" "$src" $plain \
       >"$work/use-$comp-plain.log" 2>&1 && "$work/use-$comp-plain" >>"$work/use-$comp-plain.log" 2>&1; then
    pass "install/use-$comp/c11-plain-pkg-config"
  else
    fail "install/use-$comp/c11-plain-pkg-config" "$work/use-$comp-plain.log"
  fi
done

# 3b. every installed public header compiles alone, as C11 (gcc, clang) and C++11
incdir=$(pkg-config --variable=includedir ctxalloc-core)
for h in $(cd "$incdir" && find ctxalloc -name '*.h' | sort); do
  printf '#include <%s>\nint ca_header_alone_check(void);\nint ca_header_alone_check(void) { return 0; }\n' "$h" >"$work/alone.c"
  ok=1
  for cc_cmd in "gcc -std=c11" "clang -std=c11" "g++ -std=c++11 -x c++"; do
    $cc_cmd -Wall -Wextra -Werror -pedantic -pthread -I"$incdir" -c "$work/alone.c" -o /dev/null \
      >"$work/alone.log" 2>&1 || { ok=0; echo "($cc_cmd)" >>"$work/alone.log"; break; }
  done
  if [ $ok = 1 ]; then pass "install/header-alone/$h"; else fail "install/header-alone/$h" "$work/alone.log"; fi
done

# 4. the consumer examples
if "$root/examples/consumer-pkgconfig/build.sh" "$pcdir" "$work/consumer-pkgconfig" >"$work/cpk.log" 2>&1; then
  pass "examples/consumer-pkgconfig"
else
  fail "examples/consumer-pkgconfig" "$work/cpk.log"
fi
if "$root/examples/consumer-subproject/build.sh" "$root" "$work/consumer-subproject" >"$work/csp.log" 2>&1; then
  pass "examples/consumer-subproject"
else
  fail "examples/consumer-subproject" "$work/csp.log"
fi
