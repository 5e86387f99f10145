#!/usr/bin/env bash
# Drives baton's bash completion function as bash would on <Tab> and checks
# the exact words it offers.
# usage: bash_completion_test.sh BATON [SCRIPT]
#   sources SCRIPT (an installed completion file), else `BATON completion bash`.
set -uo pipefail
baton=$1
script=${2:-}
failures=0

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/dir"
touch "$tmp/app.toml" "$tmp/app.txt"
printf '#!/bin/sh\n' >"$tmp/dir/zz-baton-app"
chmod +x "$tmp/dir/zz-baton-app"
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$tmp/app.sock"

# Another shell is refused by name, as a usage error.
refusal=$("$baton" completion zsh 2>&1 >/dev/null)
status=$?
want='baton: no completion for "zsh": only bash is supported (see baton --help)'
if [ "$status" -ne 100 ] || [ "$refusal" != "$want" ]; then
  echo "FAIL: baton completion zsh: exit $status, \"$refusal\"; expected exit 100, \"$want\""
  failures=$((failures + 1))
else
  echo "ok: baton completion zsh -> exit 100, $refusal"
fi

if [ -n "$script" ]; then
  source "$script" || { echo "FAIL: sourcing $script"; exit 1; }
else
  source <("$baton" completion bash) || { echo "FAIL: sourcing \`$baton completion bash\`"; exit 1; }
fi
if [ "$(complete -p baton 2>/dev/null)" != "complete -F _baton baton" ]; then
  echo "FAIL: the script does not register _baton for baton: $(complete -p baton 2>&1)"
  exit 1
fi

# expect "WORDS..." "OFFERED": completes the last word of WORDS (a trailing
# empty word: an empty "" argument) and compares the sorted offers.
expect() {
  local want=${*: -1}
  COMP_WORDS=("${@:1:$#-1}")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  _baton 2>/dev/null
  local got
  got=$(printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ *$//')
  if [ "$got" = "$want" ]; then
    echo "ok: ${COMP_WORDS[*]} -> $got"
  else
    echo "FAIL: ${COMP_WORDS[*]}: offered \"$got\", expected \"$want\""
    failures=$((failures + 1))
  fi
}

expect baton re "reload"
expect baton r "reload rollback run"
expect baton --v "--version"
expect baton completion "" "bash"
expect baton completion b "bash"
expect baton reload --w "--wait"
expect baton reload "" "--canary --config --control --logs --wait -c"
expect baton logs -f -n 5 --g "--generation"
expect baton status --j "--json"
expect baton check "" "--config -c"
expect baton help "" ""
expect baton verify --k "--keepalive"
expect baton run --listeners "" "per-generation shared"
expect baton run --ready-h "--ready-http"
expect baton run --canary "" ""
expect baton reload -c "$tmp/app.t" "$tmp/app.toml $tmp/app.txt"
expect baton reload --config = "$tmp/app.to" "$tmp/app.toml"
expect baton status --control "$tmp/" "$tmp/app.sock $tmp/dir"
PATH=$tmp/dir:$PATH expect baton run --listen a=tcp://127.0.0.1:1 -- zz-baton- "zz-baton-app"
expect baton run --listen a=tcp://127.0.0.1:1 -- zz-baton-app "$tmp/app.to" "$tmp/app.toml"

if [ "$failures" -ne 0 ]; then
  echo "bash completion: $failures case(s) failed"
  exit 1
fi
echo "bash completion: every case passed"
