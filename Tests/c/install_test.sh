#!/usr/bin/env bash
# scripts/install.sh into a temporary PREFIX, then a C program built only through
# `pkg-config --cflags --libs gatednet` must compile, link and report the header's version.
set -euo pipefail
cd "$(dirname "$0")/../.."
prefix=$(mktemp -d /tmp/gn-install.XXXXXX)
trap 'rm -rf "$prefix"' EXIT
PREFIX="$prefix" bash scripts/install.sh
cat > "$prefix/version.c" <<'C'
#include <gatednet.h>
#include <stdio.h>
int main(void) {
    printf("installed library %s\n", gn_version());
    return gn_version_number() == GN_VERSION_NUMBER ? 0 : 1;
}
C
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
# shellcheck disable=SC2046
gcc -std=c11 -Wall -Werror "$prefix/version.c" $(pkg-config --cflags --libs gatednet) -o "$prefix/version"
"$prefix/version"
echo "install test: 1 passed, 0 failed"
