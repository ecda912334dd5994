#!/usr/bin/env bash
# Runs the churn soak: thousands of connections opened and closed in waves for several
# minutes against one host, then checks that nothing was left behind (connections, groups,
# keys, sockets, memory). Prints its figures.
#
# Size it with WSFN_SOAK_WAVES (20), WSFN_SOAK_WARM_UP_WAVES (5), WSFN_SOAK_WAVE_SIZE (500),
# WSFN_SOAK_SECONDS (180) and WSFN_SOAK_MESSAGES (5 per connection); see tests/e2e/soak.rs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

./scripts/setup.sh
cargo build -p wsfn-host
WSFN_HOST=target/debug/wsfn-host ./scripts/build-functions.sh
cargo test -p wsfn-host --test e2e -- --ignored soak --nocapture
