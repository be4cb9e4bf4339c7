# Sourced by the other scripts: toolchain on PATH and the one set of build flags they share.
# Kernels want AVX2/FMA: build for this machine's CPU, release, no overflow checks
# (docs/design.md#kernels-and-threads).
if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi
SWIFT_FLAGS=(-c release -Xswiftc -target-cpu -Xswiftc native)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
