#!/usr/bin/env bash
# Builds the host and one sample function, then serves it (default: echo) at
# ws://127.0.0.1:8080/<name>. Stop it with Ctrl-C.
#
# Usage: ./scripts/run-sample.sh [echo|chat|counter|notify] [more wsfn-host run options]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

sample=${1:-echo}
shift || true
case "$sample" in
    echo | chat | counter | notify) ;;
    *)
        echo "run-sample: unknown sample '$sample': choose echo, chat, counter or notify" >&2
        exit 2
        ;;
esac

./scripts/setup.sh
cargo build -p wsfn-host
WSFN_HOST=target/debug/wsfn-host ./scripts/build-functions.sh "$sample"
exec target/debug/wsfn-host run "target/functions/$sample.wasm" "$@"
