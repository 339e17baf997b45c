#!/usr/bin/env bash
# Build and run the C ABI fuzzer (Tests/fuzz/fuzz.c) against a built libgatednet.so.
#
#   Tests/fuzz/run.sh [LIBDIR] [fuzz options...]     LIBDIR defaults to .build/release
#
# CI runs the short form (`--seconds 60`); a long run is e.g.
#   Tests/fuzz/run.sh .build/release --seconds 3600 --seed $RANDOM
# A failing batch prints its seed; `--replay SEED` re-runs it with a trace of every call.
# The last line is "fuzz: N passed, M failed"; the exit status is 0 iff M = 0.
set -euo pipefail
cd "$(dirname "$0")/../.."
LIBDIR=${1:-.build/release}
shift || true
case $LIBDIR in /*) ;; *) LIBDIR="$PWD/$LIBDIR" ;; esac
out=$(mktemp -d /tmp/gn-fuzz-bin.XXXXXX)
trap 'rm -rf "$out"' EXIT
gcc -std=c11 -O1 -g -Wall -Wextra -Werror -Wno-format-truncation -I include Tests/fuzz/fuzz.c \
    -L "$LIBDIR" -lgatednet -Wl,-rpath,"$LIBDIR" -lz -lm -o "$out/fuzz"
# Swift's crash backtraces would bury the report: the fuzzer prints the calls instead.
SWIFT_BACKTRACE=enable=no "$out/fuzz" "$@"
