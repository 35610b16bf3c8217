#!/usr/bin/env bash
# Runs the sfsync benchmarks (`make bench`): see bench/src/main.rs for what each measures.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo run --release -q -p sfsync-bench -- "${@:-all}"
