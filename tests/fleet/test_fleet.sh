#!/usr/bin/env bash
# The fleet test (ctest fleet): examples/fleet's playbook rolls releases out
# over three "hosts" behind examples/fleet's HAProxy, under load through
# HAProxy the whole time.
#
# The hosts are three batons on this machine, each on its own loopback
# address (127.0.0.11-13, one port) with its own releases/ and current
# symlink, and Ansible reaches them with its local connection. Release v2
# rolls out everywhere; v3 needs a file that host 2 lacks, so its candidate
# exits at boot there: the rollout must stop on host 2 (host 1 on v3, host 2
# back on v2, host 3 untouched) and the playbook fail with baton's reason.
# No request through HAProxy may fail, and HAProxy must not have retried or
# redispatched one (its config allows neither).
#
# Needs BATON_BIN, HELLO_BIN (examples/hello) and LOADGEN_BIN; ansible-playbook
# and haproxy (scripts/install-deps). Every process it starts is killed by pid
# on any exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
example=$here/../../examples/fleet

say() { echo "fleet test: $*"; }
fail() {
  echo "fleet test: FAIL: $*" >&2
  exit 1
}

for v in BATON_BIN HELLO_BIN LOADGEN_BIN; do
  [ -x "${!v:-}" ] || fail "$v must name an executable (it is '${!v:-}')"
done
for p in ansible-playbook haproxy python3 curl; do
  command -v "$p" >/dev/null || fail "$p is not installed (scripts/install-deps installs it)"
done

tmp=$(mktemp -d /tmp/baton-fleet.XXXXXX)
pids=()
cleanup() {
  local status=$?
  set +e
  # SIGTERM first (a baton drains its app and exits), SIGKILL after 10s.
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for _ in $(seq 100); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  # Apps a killed baton left behind: their pids are in its status, gone now;
  # they are found by the releases they run from.
  for exe in /proc/[0-9]*/exe; do
    if [ "$(readlink "$exe" 2>/dev/null)" = "$(readlink -f "$HELLO_BIN")" ]; then
      pid=${exe#/proc/}
      pid=${pid%/exe}
      grep -qz "^BATON_SERVICE=fleet-web$" "/proc/$pid/environ" 2>/dev/null && kill -KILL "$pid"
    fi
  done
  [ "$status" -eq 0 ] || { echo "--- left in $tmp"; exit "$status"; }
  rm -rf "$tmp"
  exit 0
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("0.0.0.0", 0)); print(s.getsockname()[1])'
}
port=$(free_port)
front=$(free_port)

# ---- three hosts: releases v1..v3, current -> v1, a baton each -------------
for n in 1 2 3; do
  h=$tmp/web$n
  for v in 1 2 3; do
    mkdir -p "$h/releases/v$v"
    {
      echo '#!/bin/sh'
      if [ "$v" = 3 ]; then
        echo "[ -e $h/feature.conf ] || { echo \"v3 needs $h/feature.conf\" >&2; exit 1; }"
      fi
      echo "HELLO_VERSION=$v exec $HELLO_BIN"
    } >"$h/releases/v$v/app"
    chmod 755 "$h/releases/v$v/app"
  done
  [ "$n" = 2 ] || touch "$h/feature.conf"
  ln -s "$h/releases/v1" "$h/current"
  cat >"$h/web.toml" <<EOF
name = "fleet-web"
command = ["current/app"]
control = "baton.sock"
ready_timeout = "5s"
drain_timeout = "5s"

[[socket]]
name = "http"
listen = "tcp://127.0.0.1$n:$port"
EOF
  "$BATON_BIN" run -c "$h/web.toml" >"$h/baton.log" 2>&1 &
  pids+=($!)
done

status_of() { "$BATON_BIN" status --json -c "$tmp/web$1/web.toml"; }
field() { python3 -c "import json, sys; s = json.load(sys.stdin); print($1)"; }
body_of() { curl -sS --max-time 5 "http://127.0.0.1$1:$port/"; }

for n in 1 2 3; do
  ok=0
  for _ in $(seq 100); do
    if "$BATON_BIN" status --ready -c "$tmp/web$n/web.toml" >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.05
  done
  [ "$ok" = 1 ] || fail "web$n's baton did not become ready in 5s: $(cat "$tmp/web$n/baton.log")"
done
say "three hosts serve v1 on 127.0.0.11-13:$port"

# ---- HAProxy from examples/fleet/haproxy.cfg, on this machine's addresses --
sed -e "s|bind :80|bind 127.0.0.1:$front|" \
    -e "s|stats socket /run/haproxy/fleet.sock|stats socket $tmp/haproxy.sock|" \
    -e "s|web\([123]\)\.example\.com:8080|127.0.0.1\1:$port|" \
    "$example/haproxy.cfg" >"$tmp/haproxy.cfg"
haproxy -c -q -f "$tmp/haproxy.cfg" || fail "haproxy -c refuses the config: $(haproxy -c -f "$tmp/haproxy.cfg" 2>&1)"
haproxy -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1 &
pids+=($!)

# `show stat` on HAProxy's stats socket, as CSV.
haproxy_stat() {
  python3 - "$tmp/haproxy.sock" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(b"show stat\n")
data = b""
while chunk := s.recv(65536):
    data += chunk
sys.stdout.write(data.decode())
EOF
}
# One field of a `show stat` row: row "hosts,web1" or "hosts,BACKEND".
stat_field() {
  haproxy_stat | python3 -c '
import csv, sys
rows = list(csv.reader(sys.stdin))
head = rows[0]
head[0] = head[0].lstrip("# ")
for r in rows[1:]:
    if len(r) > 1 and r[0] + "," + r[1] == sys.argv[1]:
        print(r[head.index(sys.argv[2])])' "$1" "$2"
}

ok=0
for _ in $(seq 100); do
  up=0
  for n in 1 2 3; do [ "$(stat_field "hosts,web$n" status 2>/dev/null)" = UP ] && up=$((up + 1)); done
  if [ "$up" = 3 ] && curl -fsS --max-time 5 "http://127.0.0.1:$front/" >/dev/null 2>&1; then ok=1; break; fi
  sleep 0.1
done
[ "$ok" = 1 ] || fail "HAProxy did not serve with its three hosts up in 10s: $(cat "$tmp/haproxy.log")"
say "HAProxy on 127.0.0.1:$front balances across them"

# ---- load through HAProxy, until both rollouts are done --------------------
"$LOADGEN_BIN" --address "127.0.0.1:$front" --duration 10m --connections 4 --json >"$tmp/load.json" &
load_pid=$!
pids+=($load_pid)

cat >"$tmp/inventory.ini" <<EOF
[web]
web1 app_dir=$tmp/web1 baton_config=$tmp/web1/web.toml
web2 app_dir=$tmp/web2 baton_config=$tmp/web2/web.toml
web3 app_dir=$tmp/web3 baton_config=$tmp/web3/web.toml

[web:vars]
ansible_connection=local
ansible_python_interpreter=/usr/bin/python3
baton=$BATON_BIN
EOF
playbook() {
  env ANSIBLE_CONFIG=/nonexistent ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 \
    ANSIBLE_LOCAL_TEMP="$tmp/ansible-local" ANSIBLE_REMOTE_TEMP="$tmp/ansible-remote" \
    HOME="$tmp" ansible-playbook -i "$tmp/inventory.ini" "$example/deploy.yml" -e "release=$1"
}

say "rolling v2 out (ansible-playbook deploy.yml -e release=v2)"
playbook v2 >"$tmp/v2.out" 2>&1 || fail "the v2 rollout failed: $(cat "$tmp/v2.out")"
for n in 1 2 3; do
  exe=$(status_of $n | field 's["release"]["executable"]')
  [ "$exe" = "$tmp/web$n/releases/v2/app" ] || fail "web$n runs $exe after the v2 rollout"
  case $(body_of $n) in *" version 2") ;; *) fail "web$n answers '$(body_of $n)', not version 2" ;; esac
done
say "ok: every host serves v2"

say "rolling v3 out: it cannot start on web2"
if playbook v3 >"$tmp/v3.out" 2>&1; then fail "the v3 rollout succeeded: $(cat "$tmp/v3.out")"; fi
grep -q "web2: v3 was rolled back, v2 serves on: baton: reload failed: generation 3 pid [0-9]* exited with status 1 before READY=1" "$tmp/v3.out" ||
  fail "the v3 rollout's failure does not give baton's reason: $(cat "$tmp/v3.out")"
! grep -q "\[web3\]" "$tmp/v3.out" || fail "the v3 rollout went on to web3: $(cat "$tmp/v3.out")"
grep -q "v3 needs $tmp/web2/feature.conf" "$tmp/web2/baton.log" ||
  fail "web2's baton log does not have v3's own error: $(cat "$tmp/web2/baton.log")"
expect_release() { # host release
  local exe
  exe=$(status_of "$1" | field 's["release"]["executable"]')
  [ "$exe" = "$tmp/web$1/releases/$2/app" ] || fail "web$1 runs $exe, not $2"
  [ "$(readlink "$tmp/web$1/current")" = "$tmp/web$1/releases/$2" ] ||
    fail "web$1's current points at $(readlink "$tmp/web$1/current"), not $2"
  case $(body_of "$1") in *" version ${2#v}") ;; *) fail "web$1 answers '$(body_of "$1")', not $2" ;; esac
}
expect_release 1 v3
expect_release 2 v2
expect_release 3 v2
[ "$(status_of 3 | field 's["reloads"]')" = 1 ] || fail "web3 was reloaded more than once"
[ "$(status_of 2 | field 's["last_reload"]["result"]')" = "rolled back" ] ||
  fail "web2's last reload is not the rolled-back one"
say "ok: web1 on v3, web2 rolled back and on v2, web3 untouched on v2"

# ---- nobody saw an error --------------------------------------------------
kill -INT "$load_pid"
wait "$load_pid" || true
python3 - "$tmp/load.json" <<'EOF' || fail "requests through HAProxy failed: $(cat "$tmp/load.json")"
import json, sys
r = json.load(open(sys.argv[1]))
print(f"fleet test: load through HAProxy: {r['ok']} requests ok, {r['failed']} failed, "
      f"{len(r['pids'])} app processes answered")
sys.exit(0 if r["failed"] == 0 and r["ok"] > 0 else 1)
EOF
for f in econ eresp wretr wredis; do
  v=$(stat_field hosts,BACKEND "$f")
  [ "${v:-0}" = 0 ] || fail "HAProxy's backend counted $f = $v"
done
say "ok: HAProxy saw no connection or response error, and retried nothing"
say passed
