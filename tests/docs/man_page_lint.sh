#!/bin/sh
# Renders a man page with groff's warnings on (-ww) and through man(1) as
# lintian does, and fails on any warning either prints.
# usage: man_page_lint.sh PAGE
set -u
page=$1
[ -s "$page" ] || { echo "man_page_lint: $page is missing or empty"; exit 1; }
warnings=$(
  LC_ALL=C.UTF-8 groff -man -ww -z -K utf8 "$page" 2>&1
  LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$page" 2>&1 >/dev/null
)
if [ -n "$warnings" ]; then
  echo "man_page_lint: $page has warnings:"
  printf '%s\n' "$warnings"
  exit 1
fi
echo "man_page_lint: $page: no warnings"
