#!/usr/bin/env bash
# Compile and run the C tests and C examples of libgatednet.
#
#   Tests/c/run.sh [LIBDIR]      LIBDIR holds libgatednet.so (default .build/release)
#
# Every Tests/c/test_*.c and every examples/c/*.c is compiled with
#   gcc -std=c11 -Wall -Wextra -Werror -O1 -I include  (linked with -rpath LIBDIR)
# and run from the repository root, each with a 300 s timeout. The header alone is compiled
# as C++11, C99 and C89 (-pedantic -Werror, with and without GN_EXPERIMENTAL), and a C++
# program is linked and run. test_bad_inputs also runs under valgrind memcheck when valgrind
# is installed (GN_VALGRIND=0 skips it). The library's exported symbols are compared with the
# header's functions, the C kernels run under UBSan (Tests/c/ubsan_kernels.c), and
# Tests/c/fork_stress.c runs against this library and the debug build when there is one.
#
# Counting: a test program prints "RESULT <name> <passed> <failed>" (testing.h) and its
# assertion checks are added up (a section of a program that crashes counts as one failed
# check; testing.h). Anything else counts as ONE check: each example run (passes if it exits
# 0), each header compatibility compile, the valgrind run, and a compile failure or a
# missing RESULT line of a test program (one failed check).
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

# --- the header alone: C++ (also linked and run: checks extern "C"), C99 and C89, each with
# and without GN_EXPERIMENTAL. gatednet.h keeps to /* */ comments and C89 declarations, so it
# builds with -std=c89 -pedantic (given the platform's <stdint.h>).
hdr_prog='#include "gatednet.h"
int main(void) { return gn_version_number() == GN_VERSION_NUMBER && gn_status_name(GN_OK) != 0 ? 0 : 1; }'
hdr_check() { # label language compiler flags...
    local label=$1 lang=$2 ok=1
    shift 2
    for exp in -UGN_EXPERIMENTAL -DGN_EXPERIMENTAL; do
        printf '%s\n' "$hdr_prog" | "$@" "$exp" -I include -fsyntax-only -x "$lang" - 2>>"$OUT/hdr.log" || ok=0
    done
    if [ "$ok" = 1 ]; then pass "header compiles as $label"; else fail "header compiles as $label"; sed 's/^/     /' "$OUT/hdr.log"; fi
    : >"$OUT/hdr.log"
}
hdr_check "C++11 (g++ -Wall -Wextra -Werror -pedantic)" c++ g++ -std=c++11 -Wall -Wextra -Werror -pedantic
hdr_check "C99 (gcc -std=c99 -Wall -Wextra -Werror -pedantic)" c gcc -std=c99 -Wall -Wextra -Werror -pedantic
hdr_check "C89 (gcc -std=c89 -Wall -Wextra -Werror -pedantic)" c gcc -std=c89 -Wall -Wextra -Werror -pedantic
if printf '%s\n' "$hdr_prog" | g++ -std=c++11 -Wall -Wextra -Werror -I include -x c++ - -x none "${LDFLAGS[@]}" \
    -o "$OUT/hdr_cxx" 2>"$OUT/hdr.log" && "$OUT/hdr_cxx"; then
    pass "a C++ program links against libgatednet and runs (extern \"C\")"
else
    fail "a C++ program links against libgatednet and runs (extern \"C\")"
    sed 's/^/     /' "$OUT/hdr.log"
fi

# --- exported symbols: exactly the functions include/gatednet.h declares (both directions),
# all of them functions, and a SONAME. Declarations are read from the preprocessed header (no
# comments); the library's exported symbols are its global defined dynamic symbols.
hdr_funcs=$(gcc -E -P -x c include/gatednet.h | grep -oE '\bgn_[a-z0-9_]+[[:space:]]*\(' | sed 's/[ (]//g' | sort -u)
lib_syms=$(nm -D --defined-only "$LIBDIR/libgatednet.so" | awk '$2 ~ /^[A-Z]$/ {print $3}' | sed 's/@.*//' | sort -u)
lib_funcs=$(nm -D --defined-only "$LIBDIR/libgatednet.so" | awk '$2 == "T" {print $3}' | sed 's/@.*//' | sort -u)
missing=$(comm -23 <(echo "$hdr_funcs") <(echo "$lib_funcs"))
extra=$(comm -13 <(echo "$hdr_funcs") <(echo "$lib_syms"))
if [ -n "$hdr_funcs" ] && [ -z "$missing" ] && [ -z "$extra" ]; then
    pass "the library exports exactly the $(echo "$hdr_funcs" | wc -l) functions of gatednet.h"
else
    fail "exported symbols differ from gatednet.h: missing [$(echo $missing)], extra $(echo "$extra" | wc -w) [$(echo $extra | cut -c1-300)]"
fi
soname=$(readelf -d "$LIBDIR/libgatednet.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
if [ -n "$soname" ]; then pass "SONAME $soname"; else fail "libgatednet.so has no SONAME"; fi

# --- the element-wise C kernels compiled from source with UBSan (float-cast-overflow included:
# GCC's -fsanitize=undefined leaves it out) on NaN, +-Inf and huge inputs.
UBFLAGS=(-std=c11 -O1 -Wall -Wextra -Werror -fsanitize=undefined,float-cast-overflow -fno-sanitize-recover=all
         -I Sources/CKernels/include)
if gcc "${UBFLAGS[@]}" -o "$OUT/ubsan_kernels" Tests/c/ubsan_kernels.c -lm 2>"$OUT/ub.cc.log" \
    && "$OUT/ubsan_kernels" >"$OUT/ub.log" 2>&1; then
    pass "C kernels under UBSan: $(grep '^RESULT' "$OUT/ub.log" | awk '{print $3}') checks, no undefined behaviour"
else
    fail "C kernels under UBSan"
    cat "$OUT/ub.cc.log" "$OUT/ub.log" 2>/dev/null | head -n 20 | sed 's/^/     /'
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
    timeout 300 "$OUT/$name" >"$OUT/$name.log" 2>&1
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
    if timeout 300 "$OUT/$name" >"$OUT/$name.log" 2>&1; then
        pass "$name ($(elapsed "$start")s)"
        sed 's/^/     | /' "$OUT/$name.log"
    else
        fail "$name: exit status $? ($(elapsed "$start")s)"
        tail -n 20 "$OUT/$name.log" | sed 's/^/     /'
    fi
done

# --- fork()ed children using both cores, against this library and, when present, the debug
# build (.build/debug, made by `swift test`; GN_DEBUG_LIBDIR overrides): no child may hang
# (Tests/c/fork_stress.c). GN_FORK_RUNS children each (default 50).
fork_libs=("$LIBDIR")
DEBUG_LIBDIR=${GN_DEBUG_LIBDIR:-$ROOT/.build/debug}
if [ -f "$DEBUG_LIBDIR/libgatednet.so" ] && [ "$(readlink -f "$DEBUG_LIBDIR")" != "$(readlink -f "$LIBDIR")" ]; then
    fork_libs+=("$DEBUG_LIBDIR")
else
    echo "info no debug build in $DEBUG_LIBDIR: fork_stress runs against $LIBDIR only"
fi
for lib in "${fork_libs[@]}"; do
    if ! gcc "${CFLAGS[@]}" -o "$OUT/fork_stress" Tests/c/fork_stress.c -L "$lib" -lgatednet -Wl,-rpath,"$lib" -lm -lpthread \
        2>"$OUT/fork.cc.log"; then
        fail "fork_stress: does not compile"; sed 's/^/     /' "$OUT/fork.cc.log"; continue
    fi
    start=$(now)
    timeout 900 "$OUT/fork_stress" "${GN_FORK_RUNS:-50}" >"$OUT/fork.log" 2>&1
    result=$(grep '^RESULT ' "$OUT/fork.log" | tail -n 1)
    if [ -n "$result" ] && [ "$(echo "$result" | awk '{print $4}')" = 0 ]; then
        pass "fork_stress against $lib: $(grep 'runs,' "$OUT/fork.log") ($(elapsed "$start")s)"
    else
        fail "fork_stress against $lib ($(elapsed "$start")s)"
        tail -n 20 "$OUT/fork.log" | sed 's/^/     /'
    fi
done

# --- the bad-input test under valgrind (memcheck) -------------------------------------------
# Passes iff memcheck reports no error (in the parent or any forked section) and the checks
# give the same failure count as the native run. GN_VALGRIND=0 skips it.
if [ "${GN_VALGRIND:-1}" != 0 ] && [ -x "$OUT/test_bad_inputs" ]; then
    if command -v valgrind >/dev/null; then
        # Valgrind 3.19 gives up on some DWARF 5 forms in the library's debug info: run a copy
        # of the program linked against the library without debug sections (symbols stay).
        mkdir -p "$OUT/vglib"
        objcopy --strip-debug "$LIBDIR/libgatednet.so" "$OUT/vglib/libgatednet.so"
        gcc "${CFLAGS[@]}" -o "$OUT/test_bad_inputs_vg" Tests/c/test_bad_inputs.c -L "$OUT/vglib" -lgatednet \
            -Wl,-rpath,"$OUT/vglib" -lm -lpthread
        start=$(now)
        timeout 600 valgrind -q --error-exitcode=1 --leak-check=no "$OUT/test_bad_inputs_vg" >"$OUT/vg.log" 2>&1
        native=$(grep '^RESULT ' "$OUT/test_bad_inputs.log" | awk '{print $4}')
        under=$(grep '^RESULT ' "$OUT/vg.log" | awk '{print $4}')
        errors=$(grep -cE '^==[0-9]+== (Invalid|Conditional jump|Use of uninitialised|Syscall param|Mismatched|Source and destination overlap|Argument .* of function)' "$OUT/vg.log")
        if [ "$errors" -eq 0 ] && [ -n "$under" ] && [ "$under" = "$native" ]; then
            pass "test_bad_inputs under valgrind: no memcheck errors ($(elapsed "$start")s)"
        else
            fail "test_bad_inputs under valgrind: $errors memcheck errors, failed checks ${under:-?} vs ${native:-?} natively ($(elapsed "$start")s)"
            grep -E '^==[0-9]+==' "$OUT/vg.log" | head -n 40 | sed 's/^/     /'
        fi
    else
        echo "info valgrind not installed: skipped"
    fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
