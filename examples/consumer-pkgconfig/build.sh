#!/usr/bin/env bash
# Build and run the pkg-config consumer. Usage: build.sh PKG_CONFIG_DIR OUT_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export PKG_CONFIG_PATH=$1
mkdir -p "$2"
cc -std=c11 -Wall -Wextra -Werror -o "$2/consumer" "$here/main.c" $(pkg-config --cflags --libs --static ctxalloc-core)
"$2/consumer"
