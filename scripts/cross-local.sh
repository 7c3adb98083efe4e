#!/usr/bin/env bash
# Builds a Linux release binary for another target on a Debian 12 x86_64
# machine whose only Rust standard library is x86_64-unknown-linux-gnu and
# which reaches no host but the package registries (so no `rustup target add`).
# CI does not need this: there rustup installs each target's std.
#
#   scripts/cross-local.sh x86_64-unknown-linux-gnu.2.17
#   scripts/cross-local.sh aarch64-unknown-linux-gnu.2.17
#   scripts/cross-local.sh x86_64-unknown-linux-musl
#   scripts/cross-local.sh aarch64-unknown-linux-musl
#
# Where the pieces come from:
#   zig            PyPI `ziglang` (linker and C compiler; glibc 2.17 / musl sysroots)
#   cargo-zigbuild crates.io
#   rustc 1.96     Debian bookworm-security `rustc-web` (+ libstd-rust-web-1.96, libllvm22),
#                  extracted under $CTFS_CROSS_DIR, not installed
#   aarch64 std    Debian `libstd-rust-web-dev:arm64` (same rustc version)
#   musl std       built from Debian `rust-web-src` with -Zbuild-std (RUSTC_BOOTSTRAP=1),
#                  its dependencies from crates.io; Debian ships no musl std
# The x86_64 glibc target uses the rustup toolchain as it is.
# Output: native/ctfs.<platform>.node (napi build --platform --release --strip).
set -euo pipefail
target=${1:?usage: scripts/cross-local.sh <target triple>[.glibc version]}
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${CTFS_CROSS_DIR:-/tmp/ctfs-cross}
mkdir -p "$dir/bin" "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/debs"

pip install --quiet ziglang
ln -sf "$(python3 -c 'import ziglang, os; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')" "$dir/bin/zig"
command -v cargo-zigbuild >/dev/null || cargo install cargo-zigbuild --locked
export PATH="$dir/bin:$PATH"

extra=()
case "$target" in
  x86_64-unknown-linux-gnu*) ;;
  *)
    if [ ! -x "$dir/rust/usr/bin/rustc" ]; then
      # apt with private lists: adds arm64 indices without touching the system's dpkg setup.
      apt=(-o APT::Architectures::=amd64 -o APT::Architectures::=arm64 -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache")
      apt-get "${apt[@]}" update >/dev/null
      (cd "$dir/debs" && apt-get "${apt[@]}" download rustc-web:amd64 libstd-rust-web-1.96:amd64 \
        libstd-rust-web-dev:amd64 libllvm22:amd64 libstd-rust-web-dev:arm64 rust-web-src)
      for d in "$dir"/debs/*.deb; do dpkg-deb -x "$d" "$dir/rust"; done
    fi
    printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s "$@"\n' "$dir/rust/usr/lib/x86_64-linux-gnu" "$dir/rust/usr/bin/rustc" > "$dir/bin/rustc-web"
    chmod +x "$dir/bin/rustc-web"
    export RUSTC="$dir/bin/rustc-web"
    case "$target" in
      *musl*) export RUSTC_BOOTSTRAP=1; extra=(-- -Zbuild-std=std,panic_unwind) ;;
    esac
    ;;
esac

cd "$root"
CARGO_TARGET_DIR="$dir/target-${target%%.*}" node scripts/build-native.cjs --target "$target" -x --strip "${extra[@]}"
