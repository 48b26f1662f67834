#!/usr/bin/env bash
# The long fuzz run (fuzz/README.md): every target in a child process of its own, in a
# build with overflow checks and debug assertions on (arithmetic that wraps on hostile
# input is a finding too) and with coverage guidance: LLVM's SanitizerCoverage, which the
# stable toolchain has, gives each edge of gridstore's own code a counter that the fuzzer
# reads after each input (src/fuzz/coverage.rs). Arguments go to bench/fuzz.rs, e.g.
#   scripts/fuzz.sh --execs 10000000 --seed 1
#   scripts/fuzz.sh --targets chunk,index --execs 1000000
# The build has a target directory of its own, since its flags differ from every other
# build's; the first one takes as long as a fresh release build.
set -euo pipefail
cd "$(dirname "$0")/.."
build=target/fuzz-build
export RUSTFLAGS="-C passes=sancov-module -C llvm-args=-sanitizer-coverage-level=3 \
 -C llvm-args=-sanitizer-coverage-inline-8bit-counters"
export CARGO_PROFILE_BENCH_OVERFLOW_CHECKS=true
export CARGO_PROFILE_BENCH_DEBUG_ASSERTIONS=true
# With an explicit --target, RUSTFLAGS reach neither build scripts nor proc macros.
target=$(rustc -vV | sed -n 's/^host: //p')
exec cargo bench --target "$target" --target-dir "$build" --features fuzzing --bench fuzz -- "$@"
