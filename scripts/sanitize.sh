#!/usr/bin/env bash
# The C tests and the fuzzer run against sanitizer builds of libgatednet (release builds: the
# debug build's conv training is too slow for the tests' time limits under ASan):
#   ASan  : swift build --sanitize=address   (Swift and the C kernels)
#   UBSan : the C kernels built with -fsanitize=undefined, no recovery (Swift has no UBSan mode)
# Each build has its own scratch path (.build-asan, .build-ubsan). The test programs are
# compiled with gcc and the sanitizer runtime of Swift's clang is preloaded, as an
# uninstrumented host process (Python, a C program) would have to.
#
#   scripts/sanitize.sh [asan|ubsan|all] [fuzz seconds, default 60]
#
# Takes about 10 minutes on 2 cores; not part of CI (scripts/test.sh) for time. The README's
# "Reliability" paragraph records its last result.
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-all}
fuzz_seconds=${2:-60}
rt_dir=$(dirname "$(find /opt/swift /usr -name 'libclang_rt.asan-x86_64.so' -path '*clang*' 2>/dev/null | head -n 1)")
[ -d "$rt_dir" ] || { echo "sanitize.sh: no clang sanitizer runtime found" >&2; exit 1; }

run_with() { # name runtime-file swift-build-flags...
    local name=$1 rt="$rt_dir/$2" scratch=".build-$1"
    shift 2
    echo "== $name: building (swift build -c release $* --scratch-path $scratch)"
    swift build -c release -Xswiftc -static-stdlib "$@" --scratch-path "$scratch" 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' || true
    test -f "$scratch/release/libgatednet.so"
    # gcc links the test programs against the instrumented library: give it the runtime.
    local wrap
    wrap=$(mktemp -d /tmp/gn-sanitize.XXXXXX)
    for cc in gcc g++; do
        cat > "$wrap/$cc" <<SH
#!/bin/sh
for a in "\$@"; do [ "\$a" = -fsyntax-only ] && exec /usr/bin/$cc "\$@"; done
exec /usr/bin/$cc "\$@" -x none $rt -Wl,-rpath,$rt_dir
SH
        chmod +x "$wrap/$cc"
    done
    echo "== $name: C tests"
    PATH="$wrap:$PATH" LD_PRELOAD="$rt" GN_VALGRIND=0 ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 \
        UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 bash Tests/c/run.sh "$scratch/release"
    echo "== $name: fuzzer ($fuzz_seconds s)"
    PATH="$wrap:$PATH" LD_PRELOAD="$rt" ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 \
        UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 bash Tests/fuzz/run.sh "$scratch/release" --seconds "$fuzz_seconds"
    rm -rf "$wrap"
}
# Swift has no -sanitize=undefined on Linux: UBSan instruments the C kernels (-Xcc), and the
# link pulls in its runtime.
asan_flags=(--sanitize=address)
ubsan_flags=(-Xcc -fsanitize=undefined -Xcc -fno-sanitize-recover=undefined
             -Xswiftc -Xclang-linker -Xswiftc -fsanitize=undefined)
case $which in
    asan) run_with asan libclang_rt.asan-x86_64.so "${asan_flags[@]}" ;;
    ubsan) run_with ubsan libclang_rt.ubsan_standalone-x86_64.so "${ubsan_flags[@]}" ;;
    all)
        run_with asan libclang_rt.asan-x86_64.so "${asan_flags[@]}"
        run_with ubsan libclang_rt.ubsan_standalone-x86_64.so "${ubsan_flags[@]}"
        ;;
    *) echo "usage: $0 [asan|ubsan|all] [fuzz seconds]" >&2; exit 2 ;;
esac
