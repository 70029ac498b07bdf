#!/bin/sh
# meson install works, and a program builds against the installed library
# with pkg-config alone, both shared and static, and runs a cell.
set -eu
BUILD=${1:?usage: check.sh BUILD_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
DEST=$(mktemp -d)
trap 'rm -rf "$DEST"' EXIT
meson install -C "$BUILD" --destdir "$DEST" --quiet
PC=$(dirname "$(find "$DEST" -name cellblock.pc)")
export PKG_CONFIG_PATH="$PC" PKG_CONFIG_SYSROOT_DIR="$DEST"
LIBDIR=$(dirname "$PC")
cc "$HERE/use_library.c" -o "$DEST/shared" $(pkg-config --cflags --libs cellblock)
LD_LIBRARY_PATH="$LIBDIR" "$DEST/shared"
cc "$HERE/use_library.c" -o "$DEST/static" $(pkg-config --cflags cellblock) \
        "$LIBDIR/libcellblock.a" $(pkg-config --static --libs cellblock | sed 's/-lcellblock//')
"$DEST/static"
"$DEST/usr/local/bin/cellblock" run -- true
test -s "$DEST/usr/local/share/man/man1/cellblock.1"
echo "install check: ok"
