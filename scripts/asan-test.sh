#!/usr/bin/env bash
# Runs the test suite (or the files given) against an AddressSanitizer build of the addon.
# Node itself is not instrumented, so libasan is preloaded; leak checking is off because V8's
# own allocations at exit would drown the report.
set -euo pipefail
cd "$(dirname "$0")/.."
npx cmake-js compile -O build-asan --CDIMG2PROMPT_ASAN=ON >/dev/null
export IMG2PROMPT_NATIVE="$PWD/build-asan/Release/img2prompt_native.node"
export LD_PRELOAD="$(gcc -print-file-name=libasan.so)"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1"
exec npx vitest run "$@"
