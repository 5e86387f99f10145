#!/usr/bin/env bash
# The package test (scripts/test --package): builds baton's .deb with
# scripts/package, checks that it holds exactly the expected files, installs
# it with dpkg, runs what it installed (baton --version, the bash completion,
# the man page, the example app under the installed baton: served, reloaded
# with no failed request, stopped), then purges it and checks it is gone.
# Needs root: it installs into /usr. It refuses to run when a baton package
# or a /usr/bin/baton is there already, so it only ever removes its own; a
# trap kills what it started (by pid) and purges the package on any exit.
# Extra arguments go to scripts/package (and so to cmake); with
# BATON_PACKAGE_BUILD=DIR it packs that build tree instead.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { echo "package test: $*"; }
fail() {
  echo "package test: FAIL: $*" >&2
  exit 1
}

[ "$(id -u)" -eq 0 ] || fail "needs root: it installs the package with dpkg"
state=$(dpkg-query -W -f='${db:Status-Status}' baton 2>/dev/null || true)
case $state in
  "" | not-installed) ;;
  *) fail "package baton is $state already; this test installs and purges its own (dpkg -P baton first)" ;;
esac
[ ! -e /usr/bin/baton ] || fail "/usr/bin/baton exists without a package: the test would overwrite it"

version=$(sed -n 's/^project(baton VERSION \([0-9.]*\) .*/\1/p' CMakeLists.txt)
[ -n "$version" ] || fail "no project(baton VERSION ...) in CMakeLists.txt"
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)

tmp=$(mktemp -d)
installed=0
baton_pid=
app_pids=()
cleanup() {
  local status=$?
  set +e
  if [ -n "$baton_pid" ] && kill -0 "$baton_pid" 2>/dev/null; then
    say "cleanup: killing baton (pid $baton_pid)"
    kill -KILL "$baton_pid"
    wait "$baton_pid" 2>/dev/null
  fi
  # An app a killed baton left serving (its pids, from its answers).
  for pid in "${app_pids[@]}"; do
    if [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = /usr/lib/baton/examples/hello ]; then
      say "cleanup: killing the example app (pid $pid)"
      kill -KILL "$pid"
    fi
  done
  # A killed baton leaves its control and notify sockets behind.
  rm -f /run/baton/baton-package-test.sock /run/baton/baton-package-test.sock.notify
  if [ "$installed" -eq 1 ]; then
    say "cleanup: purging the package"
    dpkg -P baton >/dev/null
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT

say "building the .deb (scripts/package)"
scripts/package "$@" | tee "$tmp/package.out"
deb=$(tail -n 1 "$tmp/package.out")
[ -f "$deb" ] || fail "scripts/package did not print the path of a .deb (last line: $deb)"
[ "$(basename "$deb")" = "baton_${version}_$(dpkg --print-architecture).deb" ] ||
  fail "the .deb is named $(basename "$deb"), not baton_${version}_$(dpkg --print-architecture).deb"

say "checking the .deb's control fields"
[ "$(dpkg-deb -f "$deb" Package)" = baton ] || fail "Package: is $(dpkg-deb -f "$deb" Package)"
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || fail "Version: is $(dpkg-deb -f "$deb" Version), not $version"
[ "$(dpkg-deb -f "$deb" Section)" = admin ] || fail "Section: is $(dpkg-deb -f "$deb" Section)"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libc6 libuv1 libsystemd0; do
  [[ $depends == *"$lib "* || $depends == *"$lib," ]] || fail "Depends: ($depends) lacks $lib (dpkg-shlibdeps)"
done

say "checking that the .deb holds exactly the expected files"
cat >"$tmp/expected" <<EOF
./usr/bin/baton
./usr/lib/$multiarch/baton/libbaton_shim.so
./usr/lib/baton/examples/hello
./usr/lib/systemd/system/baton@.service
./usr/lib/systemd/system/baton@.socket
./usr/share/bash-completion/completions/baton
./usr/share/doc/baton/README.md
./usr/share/doc/baton/copyright
./usr/share/doc/baton/examples/hello/baton.toml
./usr/share/doc/baton/servers.md
./usr/share/man/man1/baton.1.gz
EOF
dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { print $6 }' | sort >"$tmp/actual"
sort -o "$tmp/expected" "$tmp/expected"
diff -u "$tmp/expected" "$tmp/actual" || fail "the .deb's files differ from the expected list (above: - expected, + in the .deb)"
! grep -i test "$tmp/actual" || fail "the .deb holds test files (above)"

say "installing it (dpkg -i)"
installed=1
dpkg -i "$deb"
[ "$(dpkg-query -W -f='${db:Status-Status}' baton)" = installed ] || fail "dpkg -i left baton not installed"

say "checking /usr/bin/baton --version"
[ "$(command -v baton)" = /usr/bin/baton ] || fail "baton on PATH is $(command -v baton), not /usr/bin/baton"
got=$(/usr/bin/baton --version)
[ "$got" = "baton $version" ] || fail "baton --version printed \"$got\", not \"baton $version\""

say "checking baton's libraries resolve and the shim is where baton looks (/usr/lib/$multiarch/baton)"
ldd /usr/bin/baton | grep -q "not found" && fail "baton has a library not found: $(ldd /usr/bin/baton)"
[ "$(readlink -f /usr/lib/"$multiarch"/baton/libbaton_shim.so)" = /usr/lib/"$multiarch"/baton/libbaton_shim.so ] ||
  fail "the shim is not at /usr/lib/$multiarch/baton/libbaton_shim.so"

say "checking the bash completion: the installed file, and \`baton completion bash\`"
/usr/bin/baton completion bash | cmp - /usr/share/bash-completion/completions/baton ||
  fail "the installed completion is not what \`baton completion bash\` prints"
bash tests/completion/bash_completion_test.sh /usr/bin/baton /usr/share/bash-completion/completions/baton ||
  fail "the installed bash completion"
bash tests/completion/bash_completion_test.sh /usr/bin/baton || fail "\`baton completion bash\`, sourced"

say "checking man -w baton"
page=$(man -w baton) || fail "man -w baton finds no page (does a dpkg path-exclude drop /usr/share/man?)"
[ "$page" = /usr/share/man/man1/baton.1.gz ] || fail "man -w baton is $page, not /usr/share/man/man1/baton.1.gz"
zcat "$page" | grep -q "^\.TH BATON 1 \"[0-9-]*\" \"baton $version\"" || fail "the page's .TH does not say baton $version"

# The example, from the installed paths: the installed config is what run
# would take; the run itself uses a copy with only its name (so its control
# socket is its own) and port (a free one, not 8080) changed.
example=/usr/share/doc/baton/examples/hello/baton.toml
say "checking the installed example config (baton check -c $example)"
/usr/bin/baton check -c "$example" || fail "baton check -c $example"
port=$(python3 - <<'EOF'
import socket
for _ in range(100):
    v4 = socket.socket()
    v4.bind(("127.0.0.1", 0))
    port = v4.getsockname()[1]
    v6 = socket.socket(socket.AF_INET6)
    try:
        v6.bind(("::1", port))
    except OSError:
        continue
    print(port)
    break
EOF
)
[ -n "$port" ] || fail "no port free on both 127.0.0.1 and ::1"
config=$tmp/hello.toml
sed -e 's/^name = "hello"$/name = "baton-package-test"/' -e "s/:8080\"$/:$port\"/" "$example" >"$config"
changed=$(diff "$example" "$config" | grep -c '^>' || true)
[ "$changed" -eq 3 ] || fail "the copy of $example changed $changed lines, not 3 (name, two listen)"

# get URL: the body of one GET, 2 s at most.
get() { curl -gsS --max-time 2 "$1"; }

# expect_hello URL VERSION: the answer is "hello from pid P version VERSION"
# from the installed example app; sets $hello_pid to P.
expect_hello() {
  local body
  body=$(get "$1") || fail "GET $1 failed"
  [[ $body =~ ^hello\ from\ pid\ ([0-9]+)\ version\ $2$ ]] ||
    fail "GET $1 answered \"$body\", not \"hello from pid P version $2\""
  hello_pid=${BASH_REMATCH[1]}
  app_pids+=("$hello_pid")
  [ "$(readlink "/proc/$hello_pid/exe")" = /usr/lib/baton/examples/hello ] ||
    fail "pid $hello_pid, which answered $1, is not /usr/lib/baton/examples/hello"
  say "ok: $1 -> $body"
}

say "starting /usr/bin/baton run -c $config (127.0.0.1:$port, [::1]:$port)"
/usr/bin/baton run -c "$config" >"$tmp/baton.log" 2>&1 &
baton_pid=$!
deadline=$((SECONDS + 30))
until get "http://127.0.0.1:$port/" >/dev/null 2>&1; do
  kill -0 "$baton_pid" 2>/dev/null || { cat "$tmp/baton.log"; fail "baton exited before it served"; }
  [ "$SECONDS" -lt "$deadline" ] || { cat "$tmp/baton.log"; fail "no answer on 127.0.0.1:$port within 30 s"; }
  sleep 0.1
done
expect_hello "http://127.0.0.1:$port/" 1
first=$hello_pid
expect_hello "http://[::1]:$port/" 1
[ "$hello_pid" = "$first" ] || fail "[::1] was answered by pid $hello_pid, 127.0.0.1 by $first"

say "baton reload --wait to HELLO_VERSION 2"
sed -i 's/^HELLO_VERSION = "1"$/HELLO_VERSION = "2"/' "$config"
/usr/bin/baton reload --wait -c "$config" || fail "baton reload --wait exited $?"
expect_hello "http://127.0.0.1:$port/" 2
[ "$hello_pid" != "$first" ] || fail "version 2 is served by the old pid $first"
! kill -0 "$first" 2>/dev/null || fail "the replaced app (pid $first) is still running after reload --wait"

say "baton verify: load while it reloads once; no request may fail"
/usr/bin/baton verify -c "$config" --reloads 1 --duration 2s | tee "$tmp/verify.out" ||
  fail "baton verify exited non-zero (a failed request or reload)"
grep -Eq '^verify: 1 reload \(all ok\), [0-9,]+ requests, 0 failed$' "$tmp/verify.out" ||
  fail "baton verify's summary is not \"verify: 1 reload (all ok), N requests, 0 failed\""
expect_hello "http://127.0.0.1:$port/" 2
last=$hello_pid

say "baton stop"
/usr/bin/baton stop -c "$config" || fail "baton stop exited $?"
deadline=$((SECONDS + 30))
while kill -0 "$baton_pid" 2>/dev/null; do
  [ "$SECONDS" -lt "$deadline" ] || fail "baton (pid $baton_pid) still runs 30 s after baton stop"
  sleep 0.1
done
wait "$baton_pid" && run_status=0 || run_status=$?
baton_pid=
[ "$run_status" -eq 0 ] || { cat "$tmp/baton.log"; fail "baton run exited $run_status after stop, not 0"; }
! kill -0 "$last" 2>/dev/null || fail "the app (pid $last) outlived baton stop"
! get "http://127.0.0.1:$port/" >/dev/null 2>&1 || fail "127.0.0.1:$port still answers after baton stop"
say "ok: baton run exited 0; its app and sockets are gone"

say "removing the package (dpkg -r, then dpkg -P)"
dpkg -r baton
[ ! -e /usr/bin/baton ] || fail "/usr/bin/baton is still there after dpkg -r baton"
dpkg -P baton
installed=0
state=$(dpkg-query -W -f='${db:Status-Status}' baton 2>/dev/null || true)
[ -z "$state" ] || [ "$state" = not-installed ] || fail "after dpkg -P, baton is $state"
for f in $(cat "$tmp/expected"); do
  [ ! -e "${f#.}" ] || fail "${f#.} is still there after dpkg -P baton"
done
say "ok: every file of the package is gone"
say "passed"
