#!/usr/bin/env bash
# A first look at Kiln without hardware: build, start a conductor on its embedded defaults
# (SQLite in a temporary directory), enroll a node with the fake BMC driver, and take it
# through manage → provide → deploy → undeploy with the normal CLI. Everything stops at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/kiln.mjs ] || npm run build >/dev/null
work=$(mktemp -d)
port=${KILN_DEMO_PORT:-16385}
export KILN_API="http://127.0.0.1:$port"
kiln() { node dist/kiln.mjs "$@"; }

node dist/kiln.mjs conductor --host 127.0.0.1 --port "$port" --db "sqlite:$work/kiln.db" --log-level warn 2>"$work/conductor.log" &
conductor=$!
trap 'kill $conductor 2>/dev/null; wait $conductor 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -sf "$KILN_API/" >/dev/null && break; sleep 0.1; done

set -x
kiln node create --name demo-1 --bmc-address fake://demo-1 --mac 52:54:00:de:00:01 --property cpu_arch=x86_64
kiln image add demo-image http://127.0.0.1/demo.raw --checksum "sha256:$(printf 'demo' | sha256sum | cut -d' ' -f1)"
kiln node manage demo-1 --wait
kiln node provide demo-1 --wait
kiln node deploy demo-1 --image demo-image --hostname web-1 --wait
kiln node list
kiln node power demo-1 status
kiln node undeploy demo-1 --wait
kiln node events demo-1
