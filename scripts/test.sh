#!/usr/bin/env bash
# Runs every test: installs the guest toolchain if needed (and the Python and JavaScript
# component tools, whose builds of echo and chat pass the same tests), builds the sample
# functions and test fixtures, then runs the host's unit tests and the end-to-end tests (which
# start the real wsfn-host binary and talk WebSocket to it over loopback), and the guest SDK's
# tests.
#
# Extra arguments go to `cargo test`, e.g. `./scripts/test.sh --test e2e chat`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

./scripts/setup.sh --other-languages
./scripts/test-deps.sh
cargo build -p wsfn-host
WSFN_HOST=target/debug/wsfn-host ./scripts/build-functions.sh --other-languages
cargo test "$@"
# The SDK's own unit and doc tests run on the host target; they have their own workspace.
cargo test --manifest-path guest-sdk/Cargo.toml --target-dir target/sdk-test
