#!/usr/bin/env bash
# Install the C library for other programs: header, libgatednet.so and a pkg-config file.
#
#   PREFIX=/usr/local scripts/install.sh      (PREFIX defaults to /usr/local; DESTDIR is honoured)
#
# Builds the release library first if it is missing (scripts/setup.sh builds it too). Afterwards
#   cc prog.c $(pkg-config --cflags --libs gatednet)
# compiles and links a program (set PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig for a PREFIX that
# pkg-config does not search). The library needs OpenBLAS at run time (libopenblas0).
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
LIBDIR=${LIBDIR:-$PREFIX/lib}
INCLUDEDIR=${INCLUDEDIR:-$PREFIX/include}

lib=.build/release/libgatednet.so
if [ ! -f "$lib" ]; then
    swift build -c release -Xswiftc -static-stdlib 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' || true
fi
test -f "$lib" || { echo "install.sh: $lib was not built" >&2; exit 1; }

version=$(sed -nE 's/^#define GN_VERSION_(MAJOR|MINOR|PATCH) ([0-9]+).*/\2/p' include/gatednet.h | paste -sd.)
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" { print $2 }')

install -d "$DESTDIR$LIBDIR/pkgconfig" "$DESTDIR$INCLUDEDIR"
install -m 644 include/gatednet.h "$DESTDIR$INCLUDEDIR/gatednet.h"
if [ -n "$soname" ] && [ "$soname" != libgatednet.so ]; then
    # Real file under its SONAME, the development name a link to it.
    install -m 755 "$lib" "$DESTDIR$LIBDIR/$soname"
    ln -sf "$soname" "$DESTDIR$LIBDIR/libgatednet.so"
else
    install -m 755 "$lib" "$DESTDIR$LIBDIR/libgatednet.so"
fi
cat > "$DESTDIR$LIBDIR/pkgconfig/gatednet.pc" <<PC
prefix=$PREFIX
libdir=$LIBDIR
includedir=$INCLUDEDIR

Name: gatednet
Description: Deep gated networks and neural path kernels (C library)
Version: $version
Requires.private: openblas
Cflags: -I\${includedir}
Libs: -L\${libdir} -lgatednet -Wl,-rpath,\${libdir}
PC
if [ -z "$DESTDIR" ] && command -v ldconfig >/dev/null && [ "$(id -u)" = 0 ]; then ldconfig "$LIBDIR" 2>/dev/null || true; fi
echo "installed gatednet $version into $DESTDIR$PREFIX (header, library${soname:+ $soname}, pkgconfig/gatednet.pc)"
