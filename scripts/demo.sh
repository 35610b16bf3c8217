#!/usr/bin/env bash
# sfsync demo: a throwaway PostgreSQL 15 with sfsync preloaded + sf-emulator as the org,
# two sample tables opted in, and changes shown flowing both ways.
#
#   scripts/demo.sh          (re)start the demo from scratch (what `make demo` runs)
#   scripts/demo.sh stop     stop the demo cluster and emulator, remove .demo/ (`make clean-demo`)
#
# The cluster (data, socket, server log) lives in .demo/ when the OS user running Postgres can
# reach it; a clone under a directory that user cannot enter (a mode-700 home, as root) gets
# its cluster in a directory of its own under /tmp instead, recorded in .demo/cluster-dir.
#
# Assumes sfsync is installed (`make install`) and the emulator is built (`make emulator`).
# Environment: DEMO_PORT (54329), DEMO_EMULATOR_PORT (18443), SF_EMULATOR_BIN,
#              DEMO_TIMEOUT (seconds to wait for each sync step, 20), PG_CONFIG.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEMO="$ROOT/.demo"
# Where the cluster is: .demo/ itself, or what .demo/cluster-dir names (see above).
PGDIR="$DEMO"
[ -f "$DEMO/cluster-dir" ] && PGDIR="$(cat "$DEMO/cluster-dir")"
PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}"
PGBIN="$("$PG_CONFIG" --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)"
TIMEOUT="${DEMO_TIMEOUT:-20}"
API="v61.0"
EMU_BIN="${SF_EMULATOR_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/sf-emulator}"

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
    B=$'\e[1m'; DIM=$'\e[2m'; G=$'\e[32m'; C=$'\e[36m'; R=$'\e[31m'; N=$'\e[0m'
else
    B=""; DIM=""; G=""; C=""; R=""; N=""
fi
step() { printf '\n%s==> %s%s\n' "$B$G" "$*" "$N"; }
info() { printf '    %s\n' "$*"; }
die() {
    printf '\n%sdemo failed: %s%s\n' "$B$R" "$*" "$N" >&2
    if [ -f "$PGDIR/postgres.log" ]; then
        printf '%s--- last lines of %s ---%s\n' "$DIM" "$PGDIR/postgres.log" "$N" >&2
        tail -n 25 "$PGDIR/postgres.log" >&2 || true
    fi
    if [ -f "$DEMO/emulator.log" ]; then
        printf '%s--- last lines of %s ---%s\n' "$DIM" "$DEMO/emulator.log" "$N" >&2
        tail -n 15 "$DEMO/emulator.log" >&2 || true
    fi
    printf 'The cluster and emulator are left running for inspection; stop them with: make clean-demo\n' >&2
    exit 1
}

# Postgres never runs as root: as root, the cluster belongs to the OS user postgres.
if [ "$(id -u)" -eq 0 ]; then
    PGUSER_OS=postgres
    as_pg() { runuser -u postgres -- "$@"; }
else
    PGUSER_OS="$(id -un)"
    as_pg() { "$@"; }
fi

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port_from() {
    local p="$1"
    while port_in_use "$p"; do p=$((p + 1)); done
    echo "$p"
}

stop_demo() {
    if [ -f "$PGDIR/pgdata/postmaster.pid" ]; then
        info "stopping demo cluster"
        if ! as_pg "$PGBIN/pg_ctl" stop -D "$PGDIR/pgdata" -m fast -w -t 30 >/dev/null 2>&1; then
            local pid
            pid="$(head -n1 "$PGDIR/pgdata/postmaster.pid" 2>/dev/null || true)"
            [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
        fi
    fi
    if [ -f "$DEMO/emulator.pid" ]; then
        local pid
        pid="$(cat "$DEMO/emulator.pid")"
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            info "stopping sf-emulator (pid $pid)"
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
    fi
    [ "$PGDIR" = "$DEMO" ] || rm -rf "$PGDIR"
    rm -rf "$DEMO"
    PGDIR="$DEMO"
}

if [ "${1:-}" = "stop" ]; then
    if [ -d "$DEMO" ]; then stop_demo; info "demo stopped, .demo/ removed"; else info "no demo running"; fi
    exit 0
fi
[ $# -eq 0 ] || { echo "usage: $0 [stop]" >&2; exit 2; }

# ---- preflight -------------------------------------------------------------------------------
[ -x "$PGBIN/initdb" ] || die "PostgreSQL 15 not found in $PGBIN (run: make setup)"
[ -x "$EMU_BIN" ] || die "sf-emulator not built at $EMU_BIN (run: make emulator)"
[ -f "$("$PG_CONFIG" --sharedir)/extension/sfsync.control" ] || die "sfsync is not installed (run: make install)"
command -v jq >/dev/null || die "jq missing (run: make setup)"
command -v curl >/dev/null || die "curl missing (run: make setup)"

if [ -d "$DEMO" ]; then
    step "Stopping the previous demo"
    stop_demo
fi
mkdir -p "$DEMO"
if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$DEMO"
    if ! as_pg test -w "$DEMO"; then
        # The clone is somewhere postgres cannot enter: the cluster goes to /tmp.
        PGDIR="$(mktemp -d /tmp/sfsync-demo.XXXXXX)"
        chown postgres: "$PGDIR"
        echo "$PGDIR" >"$DEMO/cluster-dir"
        as_pg test -w "$PGDIR" || die "the OS user postgres cannot write $PGDIR either"
    fi
fi

PORT="$(free_port_from "${DEMO_PORT:-54329}")"
EPORT="$(free_port_from "${DEMO_EMULATOR_PORT:-18443}")"

# ---- sf-emulator -------------------------------------------------------------------------------
step "Starting sf-emulator on 127.0.0.1:$EPORT (log: .demo/emulator.log)"
nohup "$EMU_BIN" --listen "127.0.0.1:$EPORT" >"$DEMO/emulator.log" 2>&1 </dev/null &
echo $! >"$DEMO/emulator.pid"
SF_URL=""
for _ in $(seq 1 100); do
    line="$(head -n1 "$DEMO/emulator.log" 2>/dev/null || true)"
    case "$line" in
        "listening on "*) SF_URL="${line#listening on }"; SF_URL="${SF_URL%% *}"; break ;;
    esac
    kill -0 "$(cat "$DEMO/emulator.pid")" 2>/dev/null || die "sf-emulator exited at startup"
    sleep 0.1
done
[ -n "$SF_URL" ] || die "sf-emulator did not print 'listening on ...' within 10 s"
SF_URL="${SF_URL%/}"
info "org at $SF_URL"

# ---- PostgreSQL ---------------------------------------------------------------------------------
step "Starting PostgreSQL 15 with sfsync preloaded (data: $PGDIR/pgdata, port $PORT, runs as $PGUSER_OS)"
as_pg "$PGBIN/initdb" -D "$PGDIR/pgdata" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
    >"$DEMO/initdb.log" 2>&1 || { cat "$DEMO/initdb.log" >&2; die "initdb failed"; }
as_pg tee -a "$PGDIR/pgdata/postgresql.conf" >/dev/null <<EOF

# --- sfsync demo ---
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$PGDIR'
shared_preload_libraries = 'sfsync'
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
# sfsync settings: short intervals keep the demo snappy.
sfsync.poll_interval = '500ms'
sfsync.pull_interval = '1s'
sfsync.launcher_interval = '500ms'
EOF
(cd "$PGDIR" && as_pg "$PGBIN/pg_ctl" start -D "$PGDIR/pgdata" -l "$PGDIR/postgres.log" -w -t 60 >/dev/null) \
    || die "PostgreSQL did not start"

PSQL=("$PGBIN/psql" -X -v ON_ERROR_STOP=1 -h "$PGDIR" -p "$PORT" -U postgres)
"${PSQL[@]}" -q -d postgres -c "CREATE DATABASE demo" >/dev/null || die "CREATE DATABASE demo failed"

# run_sql "title" <<'SQL' ... SQL  — shows the statements and their output.
run_sql() {
    step "$1"
    "${PSQL[@]}" -d demo --echo-queries -P pager=off || die "SQL step failed: $1"
}
# q "SELECT ..." — one value, unaligned.
q() { "${PSQL[@]}" -d demo -qAt -c "$1"; }

# wait_for "what" "SQL returning t/f"
wait_for() {
    local what="$1" sql="$2" deadline=$((SECONDS + TIMEOUT))
    printf '    %swaiting for %s ...%s' "$DIM" "$what" "$N"
    while [ "$SECONDS" -lt "$deadline" ]; do
        if [ "$(q "$sql" 2>/dev/null || true)" = "t" ]; then
            printf ' %sdone%s\n' "$G" "$N"
            return 0
        fi
        printf '.'
        sleep 0.5
    done
    printf '\n'
    die "timed out after ${TIMEOUT}s waiting for $what"
}

# ---- Salesforce REST helpers (what you'd do against a real org) --------------------------------
TOKEN=""
sf_login() {
    # Newest API version the org offers (GET /services/data/), like the sfsync client does.
    local v
    v="$(curl -fsS "$SF_URL/services/data/" 2>/dev/null | jq -r 'if type == "array" then (last | .version) else empty end' 2>/dev/null || true)"
    [ -z "$v" ] || [ "$v" = null ] || API="v${v#v}"
    TOKEN="$(curl -fsS "$SF_URL/services/oauth2/token" \
        -d grant_type=client_credentials -d client_id=sfsync-local -d client_secret=sfsync-local-secret \
        | jq -r .access_token)" || die "OAuth login to the emulator failed"
    [ -n "$TOKEN" ] && [ "$TOKEN" != null ] || die "no access_token from the emulator"
}
sf_query() {
    curl -sS --fail-with-body -G "$SF_URL/services/data/$API/query" -H "Authorization: Bearer $TOKEN" \
        --data-urlencode "q=$1"
}
sf() { # sf METHOD PATH [JSON]
    local args=(-sS --fail-with-body -X "$1" "$SF_URL/services/data/$API/$2" -H "Authorization: Bearer $TOKEN")
    [ -z "${3:-}" ] || args+=(-H 'Content-Type: application/json' --data-raw "$3")
    curl "${args[@]}"
}
show_cmd() { printf '    %s$ %s%s\n' "$C" "$*" "$N"; }

# ---- the demo ------------------------------------------------------------------------------------
run_sql "Create the extension and point it at the org" <<SQL
CREATE EXTENSION sfsync;
SELECT sfsync.add_connection('default',
       login_url     => '$SF_URL',
       client_id     => 'sfsync-local',
       client_secret => 'sfsync-local-secret');
SQL

run_sql "Create two application tables and opt them in" <<'SQL'
CREATE TABLE accounts (
    id             bigserial PRIMARY KEY,
    name           text NOT NULL,
    industry       text,
    annual_revenue numeric,
    website        text
);
CREATE TABLE contacts (
    id         bigserial PRIMARY KEY,
    first_name text,
    last_name  text NOT NULL,
    email      text,
    phone      text
);
SELECT sfsync.sync_table('accounts', 'Account',
       fields => '{"name":"Name","industry":"Industry","annual_revenue":"AnnualRevenue","website":"Website"}');
-- no mapping: columns are matched by name (first_name -> FirstName, ...)
SELECT sfsync.sync_table('contacts', 'Contact');
SQL

run_sql "Write rows in Postgres, as the application would" <<'SQL'
INSERT INTO accounts (name, industry, annual_revenue, website) VALUES
    ('Acme Corporation', 'Manufacturing', 12500000, 'https://acme.example'),
    ('Initech',          'Technology',     4200000, 'https://initech.example'),
    ('Umbrella Health',  'Healthcare',    98000000, 'https://umbrella.example');
INSERT INTO contacts (first_name, last_name, email, phone) VALUES
    ('Ada',   'Lovelace', 'ada@acme.example',      '+1 555 0100'),
    ('Peter', 'Gibbons',  'peter@initech.example', '+1 555 0101');
SQL

step "The background worker pushes them to Salesforce"
wait_for "every row to get a Salesforce Id (sfid)" \
    "SELECT NOT EXISTS (SELECT 1 FROM accounts WHERE sfid IS NULL) AND NOT EXISTS (SELECT 1 FROM contacts WHERE sfid IS NULL)"
"${PSQL[@]}" -d demo -P pager=off -c "SELECT id, name, sfid FROM accounts ORDER BY id" \
    -c "SELECT id, first_name, last_name, sfid FROM contacts ORDER BY id"

step "The same records, read back from Salesforce over REST"
sf_login
show_cmd "curl $SF_URL/services/data/$API/query?q=SELECT Id, Name, Industry, AnnualRevenue FROM Account"
sf_query "SELECT Id, Name, Industry, AnnualRevenue, Website FROM Account ORDER BY Name" \
    | jq -c '.records[] | {Id, Name, Industry, AnnualRevenue, Website}' | sed 's/^/    /' \
    || die "SOQL query on Account failed"
sf_query "SELECT Id, FirstName, LastName, Email FROM Contact ORDER BY LastName" \
    | jq -c '.records[] | {Id, FirstName, LastName, Email}' | sed 's/^/    /' \
    || die "SOQL query on Contact failed"

step "Someone edits and creates accounts in Salesforce"
ACME_ID="$(q "SELECT sfid FROM accounts WHERE name = 'Acme Corporation'")" || die "reading accounts failed"
show_cmd "curl -X PATCH .../sobjects/Account/$ACME_ID -d '{\"Industry\":\"Biotechnology\",\"AnnualRevenue\":15000000}'"
sf PATCH "sobjects/Account/$ACME_ID" '{"Industry":"Biotechnology","AnnualRevenue":15000000}' >/dev/null \
    || die "PATCH Account $ACME_ID failed"
show_cmd "curl -X POST .../sobjects/Account -d '{\"Name\":\"Globex (created in Salesforce)\",...}'"
GLOBEX_ID="$(sf POST "sobjects/Account" \
    '{"Name":"Globex (created in Salesforce)","Industry":"Energy","Website":"https://globex.example"}' \
    | jq -r .id)" || die "POST Account failed"
info "new Account Id: $GLOBEX_ID"

step "... and the worker pulls the changes into Postgres"
wait_for "the Salesforce edit to reach Postgres" \
    "SELECT EXISTS (SELECT 1 FROM accounts WHERE sfid = '$ACME_ID' AND industry = 'Biotechnology')"
wait_for "the new Salesforce account to appear in Postgres" \
    "SELECT EXISTS (SELECT 1 FROM accounts WHERE sfid = '$GLOBEX_ID')"
"${PSQL[@]}" -d demo -P pager=off -c "SELECT id, name, industry, annual_revenue, sfid FROM accounts ORDER BY id"

INITECH_ID="$(q "SELECT sfid FROM accounts WHERE name = 'Initech'")" || die "reading accounts failed"
run_sql "Delete a row in Postgres" <<'SQL'
DELETE FROM accounts WHERE name = 'Initech';
SQL
printf '    %swaiting for the delete to reach Salesforce ...%s' "$DIM" "$N"
deadline=$((SECONDS + TIMEOUT))
while :; do
    n="$(sf_query "SELECT Id FROM Account WHERE Id = '$INITECH_ID'" | jq '.totalSize' 2>/dev/null || echo x)"
    [ "$n" = 0 ] && { printf ' %sdone%s\n' "$G" "$N"; break; }
    [ "$SECONDS" -lt "$deadline" ] || { printf '\n'; die "Account $INITECH_ID still in Salesforce after ${TIMEOUT}s"; }
    printf '.'
    sleep 0.5
done
show_cmd "SELECT Id FROM Account WHERE Id = '$INITECH_ID'"
sf_query "SELECT Id, Name FROM Account WHERE Id = '$INITECH_ID'" | jq -c '{totalSize, records}' | sed 's/^/    /'

step "Sync status"
"${PSQL[@]}" -d demo --echo-queries -P pager=off -P expanded=auto -c "SELECT * FROM sfsync.status" \
    || die "SELECT * FROM sfsync.status failed"

step "Done. The demo cluster and emulator are still running:"
info "psql:      psql -h $PGDIR -p $PORT -U postgres demo"
info "           (or: psql -h 127.0.0.1 -p $PORT -U postgres demo)"
info "emulator:  $SF_URL  (client_id sfsync-local, client_secret sfsync-local-secret)"
info "logs:      $PGDIR/postgres.log, $DEMO/emulator.log"
info "stop:      make clean-demo"
