#!/bin/sh
# Smoke check for examples/health, run by baton after /health passed and
# before the switch: the candidate's home page must name the version being
# deployed. It connects from baton's probe source, which reaches the
# candidate alone. baton sets BATON_CANDIDATE_URL and BATON_PROBE_SOURCE;
# APP_VERSION comes from the service's [environment].
set -eu
body=$(curl -fsS --max-time 2 --interface "$BATON_PROBE_SOURCE" "$BATON_CANDIDATE_URL/")
case $body in
  *"health example v$APP_VERSION ("*) echo "ok: $body" ;;
  *) echo "expected v$APP_VERSION, got: $body" >&2; exit 1 ;;
esac
