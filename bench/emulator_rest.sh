#!/usr/bin/env bash
# REST throughput of sf-emulator (release build, built here if missing or stale):
#   1. writes: sObject Collections create (POST composite/sobjects, 200 Contacts per call) from
#      C concurrent connections (one curl --parallel process), W records in all → records/s;
#   2. reads: seeds N Accounts through the admin endpoint, then pages through
#      `SELECT Id, Name, Industry, Website, CreatedDate, SystemModstamp FROM Account` with
#      nextRecordsUrl (2000 records per page, one keep-alive connection) → records/s;
#   3. the emulator's peak RSS (VmHWM) after each step.
#
#   bench/emulator_rest.sh [W=200000] [N=1000000] [C=4]
#   SF_EMULATOR_BIN=path/to/sf-emulator skips the build.
set -euo pipefail
W=${1:-200000}
N=${2:-1000000}
C=${3:-4}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${SF_EMULATOR_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release -q -p sf-emulator)
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/sf-emulator
else
  BIN=$SF_EMULATOR_BIN
fi
for t in curl python3; do command -v $t >/dev/null || { echo "needs $t" >&2; exit 1; }; done

WORK=$(mktemp -d)
"$BIN" --listen 127.0.0.1:0 --daily-api-limit 100000000 >"$WORK/out" 2>"$WORK/err" &
PID=$!
trap 'kill $PID 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do grep -q listening "$WORK/out" 2>/dev/null && break; sleep 0.05; done
E=$(head -1 "$WORK/out" | sed 's/listening on //')
now() { python3 -c 'import time; print(time.time())'; }
rss() { awk '/VmHWM/ {printf "%.0f MB", $2/1024}' /proc/$PID/status; }
TOKEN=$(curl -sf -X POST "$E/services/oauth2/token" -d grant_type=client_credentials \
  -d client_id=sfsync-local -d client_secret=sfsync-local-secret |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
D="$E/services/data/v62.0"

CALLS=$(( (W + 199) / 200 ))
echo "collections create: $CALLS calls x 200 Contacts over $C connections..."
python3 - "$WORK/body.json" <<'PY'
import json, sys
recs = [{"attributes": {"type": "Contact"}, "FirstName": f"First{i}", "LastName": f"Last {i}",
         "Email": f"user{i}@example.com", "Title": "Engineer", "Phone": "+1 555 0100",
         "Description": "bench row"} for i in range(200)]
json.dump({"allOrNone": False, "records": recs}, open(sys.argv[1], "w"))
PY
{
  echo "header = \"Authorization: Bearer $TOKEN\""
  echo 'header = "Content-Type: application/json"'
  echo "data-binary = \"@$WORK/body.json\""
  for _ in $(seq "$CALLS"); do echo "url = \"$D/composite/sobjects\""; echo 'output = "/dev/null"'; done
} >"$WORK/curl.cfg"
t0=$(now)
curl -sf --no-progress-meter --parallel --parallel-max "$C" -X POST -K "$WORK/curl.cfg" -w '%{http_code}\n' >"$WORK/codes"
t1=$(now)
ok=$(grep -c '^200$' "$WORK/codes" || true)
COUNT=$(curl -sf -H "Authorization: Bearer $TOKEN" "$D/query?q=SELECT+COUNT()+FROM+Contact" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["totalSize"])')
python3 -c "print(f'  {$ok}/{$CALLS} calls 200, {$COUNT} Contacts stored in {$t1-$t0:.2f} s')
print(f'  WRITE: {$COUNT/($t1-$t0):,.0f} records/s')"
echo "  emulator peak RSS: $(rss)"

echo "seeding $N Accounts..."
t0=$(now)
curl -sf -X POST "$E/__emulator/seed" -d "{\"object\":\"Account\",\"count\":$N,\"fields\":{\"Industry\":\"Banking\",\"Website\":\"https://example.com\"}}" >/dev/null
t1=$(now)
python3 -c "print(f'  seeded in {$t1-$t0:.2f} s')"
echo "  emulator peak RSS with $N Accounts: $(rss)"

echo "REST query paging (2000 per page)..."
python3 - "$E" "$TOKEN" <<'PY'
import http.client, json, sys, time, urllib.parse
base, token = sys.argv[1], sys.argv[2]
u = urllib.parse.urlparse(base)
conn = http.client.HTTPConnection(u.hostname, u.port)
hdr = {"Authorization": f"Bearer {token}"}
q = urllib.parse.quote("SELECT Id, Name, Industry, Website, CreatedDate, SystemModstamp FROM Account")
url = f"/services/data/v62.0/query?q={q}"
t0 = time.time(); rows = pages = size = 0; first = None
while url:
    conn.request("GET", url, headers=hdr)
    r = conn.getresponse(); body = r.read()
    if r.status != 200:
        sys.exit(f"HTTP {r.status}: {body[:200]!r}")
    if first is None:
        first = time.time() - t0
    d = json.loads(body)
    rows += len(d["records"]); pages += 1; size += len(body)
    url = d.get("nextRecordsUrl")
t = time.time() - t0
print(f"  {rows} records in {pages} pages ({size/1e6:.0f} MB JSON) in {t:.2f} s (first page after {first:.2f} s)")
print(f"  READ: {rows/t:,.0f} records/s (client-side JSON parsing included)")
PY
echo "  emulator peak RSS: $(rss)"
