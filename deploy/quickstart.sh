#!/usr/bin/env bash
# rosterd quickstart: installs what is missing, builds, starts a local Postgres and the
# sandbox of upstream APIs (Personio, MOCO, platform SCIM, Slack) under ./.rosterd/, runs
# rosterd on them with the demo company "acme", sends a few signed webhooks and tells you
# what happened. Ctrl-C stops everything it started.
#
#   ./deploy/quickstart.sh          interactive: keeps running until Ctrl-C
#   ./deploy/quickstart.sh --ci     shows the flow, then stops everything and exits
#                                   (also the default when CI=true or stdin is not a terminal)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state=$root/.rosterd
ci=false
[ "${1:-}" = "--ci" ] && ci=true
[ "${CI:-}" = "true" ] && ci=true
[ -t 0 ] || ci=true

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }

pids=()
pg_ctl_cmd=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ ${#pg_ctl_cmd[@]} -gt 0 ]; then "${pg_ctl_cmd[@]}" -m fast stop >/dev/null 2>&1 || true; fi
  [ "$rc" -eq 0 ] && echo "quickstart: stopped everything it started" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

say "Installing missing Debian packages and building"
"$root/deploy/install-deps.sh" build
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$root/build" -j"$(nproc)" >/dev/null
bin=$root/build
note "built $bin/rosterd and $bin/rosterctl"

mkdir -p "$state"
chmod 700 "$state"

say "Starting a local Postgres in .rosterd/pg"
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
pgdir=$state/pg
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  # initdb refuses to run as root: the cluster belongs to the postgres user.
  as_pg=(runuser -u postgres --)
  chmod 711 "$state"
  if ! runuser -u postgres -- test -x "$state"; then
    pgdir=/tmp/rosterd-quickstart-pg
    note "postgres cannot reach $state; using $pgdir"
  fi
  mkdir -p "$pgdir" && chown postgres "$pgdir"
fi
if [ ! -f "$pgdir/data/PG_VERSION" ]; then
  "${as_pg[@]}" "$pgbin/initdb" -D "$pgdir/data" -E UTF8 --auth=trust -U rosterd >/dev/null
fi
pgport=$(free_port)
pg_ctl_cmd=("${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdir/data")
"${pg_ctl_cmd[@]}" -o "-p $pgport -k $pgdir -c listen_addresses=127.0.0.1" -l "$pgdir/log" -w start >/dev/null
dburl="postgresql://rosterd@127.0.0.1:$pgport/rosterd"
# A fresh demo database each run, so the story below starts from nothing.
"$pgbin/dropdb" -h 127.0.0.1 -p "$pgport" -U rosterd --if-exists rosterd
"$pgbin/createdb" -h 127.0.0.1 -p "$pgport" -U rosterd rosterd
note "Postgres on 127.0.0.1:$pgport, database rosterd (recreated)"

say "Making a local CA, certificates and keys in .rosterd/"
cd "$state"
mkdir -p secrets
umask 077
if [ ! -f ca.pem ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 -subj "/CN=rosterd quickstart CA" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > san.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 825 -extfile san.ext 2>/dev/null
  head -c 32 /dev/urandom > secret.key
  openssl rand -hex 24 > admin.token
  openssl rand -hex 24 > secrets/personio-webhook-token
  openssl rand -hex 16 > secrets/moco-webhook-key
fi
umask 022
note "self-signed CA .rosterd/ca.pem, server certificate for 127.0.0.1, secret key, admin token, webhook secrets"

say "Starting the sandbox (fake Personio, MOCO, platform, Slack) with the demo company"
python3 "$root/deploy/sandbox/sandbox.py" serve --port 0 --seed demo \
  --tls-cert server.pem --tls-key server.key > sandbox.out 2> sandbox.log &
pids+=($!)
for _ in $(seq 150); do [ -s sandbox.out ] && break; sleep 0.1; done
[ -s sandbox.out ] || die "the sandbox did not start; see .rosterd/sandbox.log"
sb() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' sandbox.out "$1"; }
sandbox=$(sb base_url)
note "sandbox at $sandbox (control API $sandbox/_control)"

listen=$(free_port)
admin=$(free_port)
cat > rosterd.conf <<EOF
# written by deploy/quickstart.sh
listen = 127.0.0.1:$listen
admin_listen = 127.0.0.1:$admin
tls_cert = $state/server.pem
tls_key = $state/server.key
ca_file = $state/ca.pem
secret_key_file = $state/secret.key
admin_token_file = $state/admin.token
database_url = $dburl
workers = 2
log_format = json
EOF
cat > acme.json <<EOF
{
  "name": "acme",
  "timezone": "Europe/Berlin",
  "start_date": "$(date -d '-30 days' +%F)",
  "personio": { "base_url": "$(sb personio_base_url)", "client_id": "demo-client",
                "client_secret": "env:SANDBOX_PERSONIO_SECRET",
                "webhook_tokens": ["file:secrets/personio-webhook-token"] },
  "moco": { "base_url": "$(sb moco_base_url)", "api_key": "env:SANDBOX_MOCO_API_KEY",
            "webhook_keys": ["file:secrets/moco-webhook-key"] },
  "platform": { "scim_base_url": "$(sb scim_base_url)", "api_base_url": "$(sb platform_api_base_url)",
                "token": "env:SANDBOX_PLATFORM_TOKEN" },
  "alerts": { "slack_webhook_url": "env:SANDBOX_SLACK_URL" },
  "team_map": { "Backend": "Engineering", "Frontend": "Engineering", "Support": "Customer Care", "Sales": "Sales" },
  "absence_codes": { "Sick leave": 3, "Vacation": 4 },
  "fallback_approver": "cfo@acme.example",
  "policy": { "reconcile_at": "02:30", "max_deactivations_per_run": 5,
              "protected_users": ["ceo@acme.example"] }
}
EOF

say "Creating the schema and the demo connection"
ctl() { "$bin/rosterctl" -c "$state/rosterd.conf" "$@"; }
ctl migrate | sed 's/^/    /'
SANDBOX_PERSONIO_SECRET=demo-secret SANDBOX_MOCO_API_KEY=demo-moco-key \
SANDBOX_PLATFORM_TOKEN=demo-platform-token SANDBOX_SLACK_URL="$(sb slack_webhook_url)" \
  ctl connection apply "$state/acme.json" | sed 's/^/    /'

say "Starting rosterd"
"$bin/rosterd" -c "$state/rosterd.conf" 2> rosterd.log &
pids+=($!)
# up to 30 s: a loaded machine (a CI runner with tests beside it) can take 10 s to start it
for _ in $(seq 300); do
  curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1 && break
  kill -0 "${pids[-1]}" 2>/dev/null || die "rosterd exited; see .rosterd/rosterd.log"
  sleep 0.1
done
curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null || die "rosterd is not ready; see .rosterd/rosterd.log"
note "webhooks: https://127.0.0.1:$listen/webhooks/acme/{personio,moco}; admin: http://127.0.0.1:$admin"
sleep 2.5 # the intake reads the connection table every 2 s

hook=https://127.0.0.1:$listen/webhooks/acme
send() { python3 "$root/deploy/sandbox/sandbox.py" send --cafile "$state/ca.pem" --sandbox "$sandbox" "$@" 2>&1 | sed 's/^/    /'; }
export SANDBOX_PERSONIO_TOKEN SANDBOX_MOCO_KEY
SANDBOX_PERSONIO_TOKEN=$(cat secrets/personio-webhook-token)
SANDBOX_MOCO_KEY=$(cat secrets/moco-webhook-key)

say "Sending webhooks as Personio and MOCO would"
note "1. Personio: a new hire (Tom Maier) was created"
send --target "$hook/personio" person.created tom.maier@acme.example || true
note "2. Personio: Tim Lange's employment changed (he leaves soon)"
send --target "$hook/personio" personio employment.updated --person-id 1021 || true
note "3. MOCO: a presence was recorded (signed with the hook's key)"
presence='{"id":'"$((900000 + RANDOM))"',"date":"'"$(date +%F)"'","from":"09:00","to":"17:30","is_home_office":false,"user":{"id":9003,"firstname":"Demo","lastname":"User"}}'
send --target "$hook/moco" moco Presence create --json "$presence" || true
note "4. MOCO retries the same delivery: rosterd answers duplicate, with the first event id"
send --target "$hook/moco" moco Presence create --json "$presence" || true
note "5. Someone without the token tries: rosterd answers 401 and stores nothing"
SANDBOX_PERSONIO_TOKEN=wrong-token send --target "$hook/personio" personio person.deleted --person-id 1001 || true

# ---- time sync (issue 10): one attendance pushed, one absence mirrored ----
say "Time sync: MOCO working hours to Personio, a Personio absence into MOCO"
today=$(date +%F)
note "6. MOCO: Lukas Meyer clocks 08:30-12:00 today (recorded in the sandbox's MOCO, then its webhook)"
presence=$(curl -s --cacert "$state/ca.pem" -XPOST "$sandbox/_control/fixtures" \
  -d '{"moco_presences":[{"user_id":9007,"date":"'"$today"'","from":"08:30","to":"12:00"}]}' |
  python3 -c 'import json,sys; i=json.load(sys.stdin)["created"]["moco_presences"][0]
print(json.dumps({"id":i,"date":sys.argv[1],"from":"08:30","to":"12:00","is_home_office":False,
                  "user":{"id":9007,"firstname":"Lukas","lastname":"Meyer"}}))' "$today")
send --target "$hook/moco" moco Presence create --json "$presence" || true
note "7. Personio: Anna Weber's vacation (absence 30006) is approved; MOCO already has her own"
note "   holiday entry on its first day (kept) and a \"not plannable\" entry on the second (replaced)"
send --target "$hook/personio" personio absence-period.updated.status --person-id 1008 || true
for _ in $(seq 150); do # until rosterd has worked them (paced upstream calls)
  busy=$(( $(ctl events count --connection acme --status pending) + $(ctl events count --connection acme --status running) ))
  [ "$busy" -eq 0 ] && break
  sleep 0.2
done

sleep 3
say "What rosterd stored (rosterctl events list)"
ctl events list --connection acme | sed 's/^/    /'

say "What rosterd did with each event"
ids=$(ctl events list --connection acme --json |
  python3 -c 'import json,sys; print(" ".join(str(e["id"]) for e in reversed(json.load(sys.stdin))))')
for id in $ids; do
  ctl events show "$id" --json | python3 -c '
import json, sys
e = json.load(sys.stdin)
runs = ", ".join(a["outcome"] for a in e["attempt_log"]) or "not run yet"
why = e.get("note") or e.get("last_error") or ""
line = "    event %s (%s, %s subject %s): %s after %d run(s) [%s]" % (
    e["id"], e["event_type"], e["source"], e.get("subject") or "-", e["status"],
    len(e["attempt_log"]), runs)
print(line + (": " + why if why else ""))'
done
note "Each event's note is what its handler did; a failed one is retried, and a dead one is"
note "replayed with: rosterctl events replay ID (after fixing what its last error names)."

say "What time sync did upstream (sandbox state)"
curl -s --cacert "$state/ca.pem" "$sandbox/_control/state" | python3 -c '
import json, sys
st = json.load(sys.stdin)
ours = [a for a in st["attendances"] if "rosterd" in (a.get("comment") or "")]
for a in ours:
    print("    Personio attendance %s of employee %s: %s %s-%s, %s (%s)" % (
        a["id"], a["employee"], a["date"], a["start_time"], a["end_time"], a["status"], a["comment"]))
if not ours:
    print("    (no attendance pushed)")
for s in sorted((s for s in st["schedules"] if s["user_id"] == 9008), key=lambda s: s["date"]):
    half = "full day" if s["am"] and s["pm"] else "am" if s["am"] else "pm"
    print("    MOCO schedule %s of user 9008: %s code %s %s: %s" % (
        s["id"], s["date"], s["absence_code"], half, s["comment"]))'
note "rosterd's findings (what an operator reads in the nightly report):"
"$pgbin/psql" -h 127.0.0.1 -p "$pgport" -U rosterd -d rosterd -At -F ' | ' -c \
  "SELECT kind, email, detail FROM findings WHERE kind IN ('attendance_pushed', 'attendance_removed',
   'absence_created', 'absence_removed', 'conflict') ORDER BY id" | sed 's/^/    /'

say "What went to the admins' Slack channel (sandbox inbox)"
curl -s --cacert "$state/ca.pem" "$sandbox/_control/slack" | python3 -c '
import json, sys
msgs = json.load(sys.stdin)
if not msgs:
    print("    (nothing: no alerting handler ran for these events)")
for m in msgs:
    print("    -", (m.get("text") or "").replace("\n", " ")[:160])'

say "People lifecycle: a new hire and a leaver (rosterctl hires, rosterctl deactivations)"
note "Tom Maier's person.created gave the admins one new-hire alert; nobody was invited:"
curl -s --cacert "$state/ca.pem" "$sandbox/_control/slack" | python3 -c '
import json, sys
for m in json.load(sys.stdin):
    if (m.get("text") or "").startswith("New hire:"):
        for line in m["text"].splitlines():
            print("      " + line)'
ctl hires list --connection acme | sed 's/^/    /'
note "Tim Lange's last working day is a deactivation at local midnight after it (UTC and local):"
ctl deactivations upcoming --connection acme | sed 's/^/    /'
note "invite Tom: $bin/rosterctl -c $state/rosterd.conf hires invite tom.maier@acme.example --connection acme"
# ---- reconciliation (issue 11) ---------------------------------------------------------
say "Running tonight's reconciliation now (rosterctl reconcile run)"
note "Every night at policy.reconcile_at rosterd reads everything and converges everyone; run it now:"
ctl reconcile run --connection acme | sed 's/^/    /' || true
ctl report show latest --connection acme --format html -o "$state/report.html" &&
  note "the same report as one HTML page with a chart: .rosterd/report.html"
note "a dry run plans without changing anything: rosterctl reconcile run --connection acme --dry-run"

say "Where to look"
note "rosterctl:   $bin/rosterctl -c $state/rosterd.conf events list | events show ID | connection show acme"
note "reports:     $bin/rosterctl -c $state/rosterd.conf report show latest --connection acme [--format html -o FILE]"
note "metrics:     curl http://127.0.0.1:$admin/metrics"
note "sandbox:     curl $sandbox/_control/requests   (every call rosterd made upstream)"
note "logs:        .rosterd/rosterd.log (JSON lines), .rosterd/sandbox.log"

if $ci; then
  say "Non-interactive run: stopping"
  exit 0
fi
say "rosterd is running. Press Ctrl-C to stop everything."
wait "${pids[-1]}"
