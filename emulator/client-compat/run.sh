#!/usr/bin/env bash
# Runs the client-compat suites: unmodified Salesforce clients (jsforce from npm,
# simple-salesforce from PyPI, the Salesforce CLI `sf` from npm) and a Pub/Sub API client
# (grpcio + avro from PyPI, stubs from pubsub_api.proto) against sf-emulator.
#   SF_EMULATOR_BIN=/path/to/sf-emulator emulator/client-compat/run.sh
# Without SF_EMULATOR_BIN it uses $CARGO_TARGET_DIR/debug/sf-emulator or target/debug/sf-emulator.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
if [[ -z "${SF_EMULATOR_BIN:-}" ]]; then
  for cand in "${CARGO_TARGET_DIR:-$root/target}/debug/sf-emulator" "$root/target/debug/sf-emulator"; do
    if [[ -x "$cand" ]]; then SF_EMULATOR_BIN="$cand"; break; fi
  done
fi
if [[ -z "${SF_EMULATOR_BIN:-}" || ! -x "$SF_EMULATOR_BIN" ]]; then
  echo "client-compat: sf-emulator binary not found; build it (cargo build -p sf-emulator) or set SF_EMULATOR_BIN" >&2
  exit 2
fi
export SF_EMULATOR_BIN
command -v node >/dev/null || { echo "client-compat: node is required (Node.js >= 18)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "client-compat: python3 (with venv) is required" >&2; exit 2; }
cd "$here"
# Reproducible install from package-lock.json (skipped when node_modules is newer than the lock).
if [[ ! node_modules/.package-lock.json -nt package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi
status=0
echo "==> jsforce"
node --test --test-reporter=spec --test-reporter-destination=stdout "$here"/*.test.js || status=1

# simple-salesforce in its own venv, pinned by requirements.txt; reinstalled when the list changes.
venv="${CARGO_TARGET_DIR:-$root/target}/client-compat-venv"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
if [[ ! "$venv/.installed" -nt requirements.txt ]]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r requirements.txt
  touch "$venv/.installed"
fi
echo "==> simple-salesforce"
"$venv/bin/python" -m unittest -v simple_salesforce_test || status=1

# The Pub/Sub API (gRPC) with grpcio + avro from PyPI, stubs generated from pubsub_api.proto.
pubsub_venv="${CARGO_TARGET_DIR:-$root/target}/client-compat-pubsub-venv"
if [[ ! -x "$pubsub_venv/bin/python" ]]; then
  python3 -m venv "$pubsub_venv"
fi
if [[ ! "$pubsub_venv/.installed" -nt requirements-pubsub.txt ]]; then
  "$pubsub_venv/bin/pip" install --quiet --disable-pip-version-check -r requirements-pubsub.txt
  touch "$pubsub_venv/.installed"
fi
echo "==> Pub/Sub API (grpcio)"
"$pubsub_venv/bin/python" -m unittest -v pubsub_test || status=1

# The Salesforce CLI as its release shipped it (../../../shared/client-tools.md): a plain
# `npm install @salesforce/cli@X` ignores the release's npm-shrinkwrap.json and floats to
# dependencies that need node 22, so: npm pack, untar, install inside package/. Cached under the
# target dir; SF_CLI_BIN (its bin/run.js) skips the install.
sf_version=2.138.0
sf_dir="${CARGO_TARGET_DIR:-$root/target}/sf-cli-$sf_version"
if [[ -z "${SF_CLI_BIN:-}" ]]; then
  if [[ ! -f "$sf_dir/.installed" ]]; then
    echo "installing @salesforce/cli $sf_version into $sf_dir"
    rm -rf "$sf_dir"
    mkdir -p "$sf_dir"
    (cd "$sf_dir" \
      && npm pack "@salesforce/cli@$sf_version" --silent >/dev/null \
      && tar xzf "salesforce-cli-$sf_version.tgz" \
      && cd package \
      && npm install --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
    touch "$sf_dir/.installed"
  fi
  SF_CLI_BIN="$sf_dir/package/bin/run.js"
fi
export SF_CLI_BIN
echo "==> Salesforce CLI (sf $sf_version)"
"$venv/bin/python" -m unittest -v sf_cli_test || status=1
exit $status
