#!/usr/bin/env bash
# Installs what sfsync's build, tests and demo need on a Debian machine.
#
# Idempotent and fast when everything is already present: it only calls apt-get,
# cargo install or cargo pgrx init when something is actually missing.
# Works as root or as a sudo-capable user.
#
# Environment:
#   PG_CONFIG   pg_config to build against (default /usr/lib/postgresql/15/bin/pg_config)
set -euo pipefail

PG_MAJOR=15
PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config}"
PGRX_VERSION=0.18.1
DEB_PACKAGES=(
    "postgresql-${PG_MAJOR}" "postgresql-server-dev-${PG_MAJOR}"
    clang libclang-dev pkg-config sudo curl jq ca-certificates python3
)

say() { printf '==> setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ]; then
    IS_ROOT=1
    SUDO=()
else
    IS_ROOT=0
    command -v sudo >/dev/null 2>&1 || die "not root and sudo is missing: run this script as root once"
    SUDO=(sudo)
fi

# --- Debian packages ----------------------------------------------------------
if [ "$IS_ROOT" -eq 0 ]; then
    # Non-root: `cargo pgrx test` installs the extension without sudo, so we grant this user
    # write access to the extension directories through ACLs (needs setfacl).
    DEB_PACKAGES+=(acl)
fi
# Node.js runs the client-compat suite (jsforce); the machine image may bring its own.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    DEB_PACKAGES+=(nodejs npm)
fi
missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
    [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
else
    say "Debian packages present"
fi
[ -x "$PG_CONFIG" ] || die "$PG_CONFIG not found after installing postgresql-server-dev-${PG_MAJOR}"

# --- OS user that runs the test/demo clusters when we are root ----------------------
if [ "$IS_ROOT" -eq 1 ] && ! id -u postgres >/dev/null 2>&1; then
    say "creating OS user postgres"
    useradd --system --user-group --home-dir /var/lib/postgresql --create-home \
        --shell /bin/bash postgres
fi

# --- Rust toolchain -------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found: install a Rust toolchain (rustup) first"

# --- cargo-pgrx ---------------------------------------------------------------------
have_pgrx="$(cargo pgrx --version 2>/dev/null || true)"
if [ "$have_pgrx" != "cargo-pgrx ${PGRX_VERSION}" ]; then
    say "installing cargo-pgrx ${PGRX_VERSION} (found: ${have_pgrx:-none}); this takes a few minutes"
    cargo install cargo-pgrx --version "${PGRX_VERSION}" --locked --force --quiet
else
    say "cargo-pgrx ${PGRX_VERSION} present"
fi

# --- cargo pgrx init -------------------------------------------------------------------
PGRX_HOME="${PGRX_HOME:-$HOME/.pgrx}"
if grep -Eq "^pg${PG_MAJOR}[[:space:]]*=[[:space:]]*\"${PG_CONFIG}\"" "$PGRX_HOME/config.toml" 2>/dev/null; then
    say "pgrx already initialised for pg${PG_MAJOR} ($PG_CONFIG)"
else
    say "cargo pgrx init --pg${PG_MAJOR} $PG_CONFIG"
    cargo pgrx init "--pg${PG_MAJOR}" "$PG_CONFIG" >/dev/null
fi

# --- extension install directories ---------------------------------------------------
pkglibdir="$("$PG_CONFIG" --pkglibdir)"
extdir="$("$PG_CONFIG" --sharedir)/extension"
if [ "$IS_ROOT" -eq 0 ]; then
    me="$(id -un)"
    for d in "$pkglibdir" "$extdir"; do
        if [ ! -w "$d" ]; then
            say "granting $me write access to $d (ACL) for 'cargo pgrx test'"
            "${SUDO[@]}" setfacl -m "u:${me}:rwx" "$d"
        fi
    done
fi

say "ready (pg_config: $PG_CONFIG, pkglibdir: $pkglibdir)"
