#!/usr/bin/env bash
# Builds host-metrics the way it is deployed (the image uses this script): it runs on every
# host, and most of its memory is resident code, so the `agent` profile builds it for size
# (opt-level s, fat LTO, one codegen unit, panic=abort), links OpenSSL statically (a shared
# libcrypto costs ~1.2 MiB of relocated pages in every process that loads it, used or not) and
# links a non-PIE executable (no start-up relocation of its pointer tables; node_exporter, a Go
# binary, is non-PIE too). Prints the binary's path.
#
#   scripts/build-host-agent.sh            # -> target/agent/host-metrics
#
# The OpenSSL variables only reach the `agent` profile's own build directory: the release and
# test builds keep the shared system libssl3.
set -euo pipefail
cd "$(dirname "$0")/.."

multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
libdir=/usr/lib/$multiarch
[ -f "$libdir/libcrypto.a" ] || {
  echo "build-host-agent: $libdir/libcrypto.a missing (install libssl-dev)" >&2
  exit 1
}
# The relocation model reaches the final link only (`cargo rustc`): with fat LTO all code is
# generated there, while build scripts and proc macros keep theirs.
OPENSSL_STATIC=1 OPENSSL_NO_PKG_CONFIG=1 OPENSSL_LIB_DIR=$libdir OPENSSL_INCLUDE_DIR=/usr/include \
  cargo rustc --locked -q -p host-metrics --bin host-metrics --profile agent \
  -- -C relocation-model=static
echo "${CARGO_TARGET_DIR:-$PWD/target}/agent/host-metrics"
