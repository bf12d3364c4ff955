#!/bin/sh
# Builds the static library and the C programs (ASan/UBSan, -Werror), then runs them.
#   tests/c/run.sh [URL]
# Without URL only the checks that need no server run. The C example is run against URL as well.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

cd "$root"
cargo build --release --lib ${CARGO_FLAGS:-}

make -C "$here" -B all
make -C "$root/examples/c" -B push

# The SDK's threads are joined by kp_pusher_free; a leak report would be a real leak.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

status=0
if [ $# -ge 1 ]; then
    "$here/bad_inputs" "$1" || status=1
    "$root/examples/c/push" "$1" 5 || status=1
else
    "$here/bad_inputs" || status=1
fi
exit $status
