#!/usr/bin/env bash
# Installs, from Debian's packages, what the tests need and a fresh machine may lack:
# Java 17 and Maven (the Kafka broker), Chromium and a Korean font (the dashboard's browser
# test: its screenshots show Korean labels, not tofu).
set -euo pipefail
missing=()
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
[ -x /usr/bin/chromium ] || missing+=(chromium)
ls /usr/share/fonts/opentype/noto/NotoSansCJK-* >/dev/null 2>&1 || missing+=(fonts-noto-cjk)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing: ${missing[*]} (install them, or run as root so this script can)" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
