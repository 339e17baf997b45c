#!/usr/bin/env bash
# Compile and run the C tests and C examples of libgatednet.
#
#   Tests/c/run.sh [LIBDIR]      LIBDIR holds libgatednet.so (default .build/release)
#
# Every Tests/c/test_*.c and every examples/c/*.c is compiled with
#   gcc -std=c11 -Wall -Wextra -Werror -O1 -I include  (linked with -rpath LIBDIR)
# and run from the repository root. The header is also compiled as C++ (g++ -Wall -Wextra
# -Werror) and as C99 -pedantic. With GN_VALGRIND=1 test_bad_inputs also runs under
# valgrind --error-exitcode=1.
#
# Counting: a test program prints "RESULT <name> <passed> <failed>" (testing.h) and its
# assertion checks are added up. Anything else counts as ONE check: each example run (passes
# if it exits 0), each header compatibility compile, the valgrind run, and a compile failure
# or a crash/missing RESULT line of a test program (one failed check).
# The last line printed is "N passed, M failed"; the exit status is 0 iff M = 0.
set -u
cd "$(dirname "$0")/../.." || exit 2
ROOT=$(pwd)
LIBDIR=${1:-.build/release}
case $LIBDIR in /*) ;; *) LIBDIR="$ROOT/$LIBDIR" ;; esac
if [ ! -f "$LIBDIR/libgatednet.so" ]; then
    echo "run.sh: no libgatednet.so in $LIBDIR (build it first)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
OUT=$(mktemp -d /tmp/gn-ctest-bin.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
CFLAGS=(-std=c11 -Wall -Wextra -Werror -O1 -I include)
LDFLAGS=(-L "$LIBDIR" -lgatednet -Wl,-rpath,"$LIBDIR" -lm -lpthread)
passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# --- the header alone: C++ and strict older C ---------------------------------------------
hdr_check() { # name compiler flags...
    local name=$1
    shift
    if printf '#include "gatednet.h"\nint main(void) { return gn_version_number() == GN_VERSION_NUMBER ? 0 : 1; }\n' |
        "$@" -I include -fsyntax-only -x "$LANG_X" - 2>"$OUT/hdr.log"; then
        pass "header compiles as $name"
    else
        fail "header compiles as $name"
        sed 's/^/     /' "$OUT/hdr.log"
    fi
}
LANG_X=c++ hdr_check "C++11 (g++ -Wall -Wextra -Werror -pedantic)" g++ -std=c++11 -Wall -Wextra -Werror -pedantic
LANG_X=c hdr_check "C99 (gcc -std=c99 -pedantic -Werror)" gcc -std=c99 -Wall -Wextra -Werror -pedantic
# Not required: C89/C90 (the header needs <stdint.h>, which C89 lacks); reported only.
if printf '#include "gatednet.h"\n' | gcc -std=c89 -pedantic -Werror -I include -fsyntax-only -x c - 2>/dev/null; then
    echo "info the header also compiles as C89 -pedantic"
else
    echo "info the header does not compile as C89 -pedantic (not required: it needs <stdint.h>)"
fi

# --- test programs -------------------------------------------------------------------------
for src in Tests/c/test_*.c; do
    [ -e "$src" ] || continue
    name=$(basename "$src" .c)
    if ! gcc "${CFLAGS[@]}" -o "$OUT/$name" "$src" "${LDFLAGS[@]}" 2>"$OUT/$name.cc.log"; then
        fail "$name: does not compile"
        sed 's/^/     /' "$OUT/$name.cc.log"
        continue
    fi
    start=$(now)
    "$OUT/$name" >"$OUT/$name.log" 2>&1
    rc=$?
    secs=$(elapsed "$start")
    grep -v '^RESULT ' "$OUT/$name.log" | grep -E '^(FAIL|  )' | sed 's/^/     /'
    result=$(grep '^RESULT ' "$OUT/$name.log" | tail -n 1)
    if [ -z "$result" ]; then
        fail "$name: exited with status $rc before its RESULT line (${secs}s)"
        tail -n 20 "$OUT/$name.log" | sed 's/^/     /'
        continue
    fi
    p=$(echo "$result" | awk '{print $3}')
    f=$(echo "$result" | awk '{print $4}')
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$f" -eq 0 ] && [ "$rc" -ne 0 ]; then
        fail "$name: no failed check but exit status $rc"
    fi
    echo "$( [ "$f" -eq 0 ] && echo 'ok  ' || echo 'FAIL') $name: $p passed, $f failed (${secs}s)"
done

# --- examples: each must compile and exit 0 --------------------------------------------------
for src in examples/c/*.c; do
    [ -e "$src" ] || continue
    name=example_$(basename "$src" .c)
    if ! gcc "${CFLAGS[@]}" -o "$OUT/$name" "$src" "${LDFLAGS[@]}" 2>"$OUT/$name.cc.log"; then
        fail "$name: does not compile"
        sed 's/^/     /' "$OUT/$name.cc.log"
        continue
    fi
    start=$(now)
    if "$OUT/$name" >"$OUT/$name.log" 2>&1; then
        pass "$name ($(elapsed "$start")s)"
        sed 's/^/     | /' "$OUT/$name.log"
    else
        fail "$name: exit status $? ($(elapsed "$start")s)"
        tail -n 20 "$OUT/$name.log" | sed 's/^/     /'
    fi
done

# --- optional: the bad-input test under valgrind ----------------------------------------------
if [ "${GN_VALGRIND:-0}" = 1 ] && [ -x "$OUT/test_bad_inputs" ]; then
    if command -v valgrind >/dev/null; then
        start=$(now)
        if valgrind -q --error-exitcode=1 --leak-check=no "$OUT/test_bad_inputs" >"$OUT/vg.log" 2>&1; then
            pass "test_bad_inputs under valgrind ($(elapsed "$start")s)"
        else
            fail "test_bad_inputs under valgrind ($(elapsed "$start")s)"
            grep -E '^==|FAIL' "$OUT/vg.log" | head -n 40 | sed 's/^/     /'
        fi
    else
        echo "info valgrind not installed: skipped"
    fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
