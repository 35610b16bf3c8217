#!/usr/bin/env bash
# Bulk API 2.0 throughput of sf-emulator (release build): seeds N Accounts through the admin
# endpoint, times a full Bulk query download with curl (following Sforce-Locator), then times
# an insert ingest job of M rows. Prints rows/s and the emulator's peak RSS.
#
#   bench/emulator_bulk.sh [N=1000000] [M=200000]
#   SF_EMULATOR_BIN=path/to/sf-emulator (default: $CARGO_TARGET_DIR or target, release)
set -euo pipefail
N=${1:-1000000}
M=${2:-200000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${SF_EMULATOR_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/sf-emulator}
[ -x "$BIN" ] || { echo "build first: cargo build --release -p sf-emulator (or set SF_EMULATOR_BIN)" >&2; exit 1; }
for t in curl python3; do command -v $t >/dev/null || { echo "needs $t" >&2; exit 1; }; done

WORK=$(mktemp -d)
"$BIN" --listen 127.0.0.1:0 >"$WORK/out" 2>"$WORK/err" &
PID=$!
trap 'kill $PID 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do grep -q listening "$WORK/out" 2>/dev/null && break; sleep 0.05; done
E=$(head -1 "$WORK/out" | sed 's/listening on //')
now() { python3 -c 'import time; print(time.time())'; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
TOKEN=$(curl -sf -X POST "$E/services/oauth2/token" -d grant_type=client_credentials \
  -d client_id=sfsync-local -d client_secret=sfsync-local-secret | json '["access_token"]')
AUTH="Authorization: Bearer $TOKEN"
D="$E/services/data/v62.0"
wait_job() { # kind id
  while :; do
    s=$(curl -sf -H "$AUTH" "$D/jobs/$1/$2" | json '["state"]')
    case $s in JobComplete|Failed|Aborted) echo "$s"; return;; esac
    sleep 0.05
  done
}

echo "seeding $N Accounts..."
t0=$(now)
curl -sf -X POST "$E/__emulator/seed" -d "{\"object\":\"Account\",\"count\":$N,\"fields\":{\"Industry\":\"Banking\",\"Website\":\"https://example.com\"}}" >/dev/null
t1=$(now)
echo "  seeded in $(python3 -c "print(f'{$t1-$t0:.2f}')") s"

echo "bulk query (SELECT Id, Name, Industry, Website, IsDeleted, CreatedDate, SystemModstamp FROM Account)..."
t0=$(now)
JOB=$(curl -sf -H "$AUTH" -H 'Content-Type: application/json' -X POST "$D/jobs/query" \
  -d '{"operation":"query","query":"SELECT Id, Name, Industry, Website, IsDeleted, CreatedDate, SystemModstamp FROM Account"}' | json '["id"]')
state=$(wait_job query "$JOB")
t1=$(now)
LOC=""; ROWS=0; PAGES=0; BYTES=0
while :; do
  URL="$D/jobs/query/$JOB/results"; [ -n "$LOC" ] && URL="$URL?locator=$LOC"
  curl -sf -H "$AUTH" -D "$WORK/h" -o "$WORK/page.csv" "$URL"
  n=$(grep -i '^sforce-numberofrecords:' "$WORK/h" | tr -d '\r' | awk '{print $2}')
  LOC=$(grep -i '^sforce-locator:' "$WORK/h" | tr -d '\r' | awk '{print $2}')
  ROWS=$((ROWS + n)); PAGES=$((PAGES + 1)); BYTES=$((BYTES + $(stat -c %s "$WORK/page.csv")))
  [ "$LOC" = "null" ] && break
done
t2=$(now)
python3 - <<PY
rows, t0, t1, t2 = $ROWS, $t0, $t1, $t2
print(f"  job {('$state')} in {t1-t0:.2f} s; downloaded {rows} rows in $PAGES pages ({$BYTES/1e6:.0f} MB) in {t2-t1:.2f} s")
print(f"  QUERY: {rows/(t2-t0):,.0f} rows/s end to end (create+poll+download), {rows/(t2-t1):,.0f} rows/s download only")
PY

echo "bulk ingest: insert $M Contacts..."
python3 - "$M" >"$WORK/in.csv" <<'PY'
import sys
m = int(sys.argv[1])
w = sys.stdout.write
w("FirstName,LastName,Email,Postgres_Id__c,Description\n")
for i in range(m):
    w(f'First{i},"Last, {i}",user{i}@example.com,pg-{i},"bulk ""row"" {i}"\n')
PY
t0=$(now)
JOB=$(curl -sf -H "$AUTH" -H 'Content-Type: application/json' -X POST "$D/jobs/ingest" \
  -d '{"object":"Contact","operation":"insert"}' | json '["id"]')
curl -sf -H "$AUTH" -H 'Content-Type: text/csv' -X PUT --data-binary @"$WORK/in.csv" "$D/jobs/ingest/$JOB/batches" >/dev/null
t1=$(now)
curl -sf -H "$AUTH" -H 'Content-Type: application/json' -X PATCH "$D/jobs/ingest/$JOB" -d '{"state":"UploadComplete"}' >/dev/null
state=$(wait_job ingest "$JOB")
t2=$(now)
INFO=$(curl -sf -H "$AUTH" "$D/jobs/ingest/$JOB")
curl -sf -H "$AUTH" -o "$WORK/ok.csv" "$D/jobs/ingest/$JOB/successfulResults/"
t3=$(now)
python3 - <<PY
import json
info = json.loads('''$INFO''')
m, t0, t1, t2, t3 = $M, $t0, $t1, $t2, $t3
print(f"  job {info['state']}: {info['numberRecordsProcessed']} processed, {info['numberRecordsFailed']} failed")
print(f"  upload {t1-t0:.2f} s, processing {t2-t1:.2f} s, results {t3-t2:.2f} s")
print(f"  INGEST: {m/(t2-t1):,.0f} rows/s processing, {m/(t3-t0):,.0f} rows/s end to end")
PY
echo "  emulator peak RSS: $(awk '/VmHWM/ {printf "%.0f MB", $2/1024}' /proc/$PID/status)"
