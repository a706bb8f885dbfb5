#!/usr/bin/env bash
# Checks the agent's HTTP API against its OpenAPI description (docs/openapi.yaml) with
# schemathesis: a dev agent on loopback, with an API token, is sent generated requests
# for every operation but the ones excluded below, and every answer must be no 5xx, a
# status the description lists, its content type, and its schema.
#
#   bash .ci/schemathesis.sh            # MAX_EXAMPLES=25 per operation, RUN_BOUND=600 s
#
# Excluded: POST /v1/leave (the agent would exit), POST /v1/join (generated seeds would
# be resolved through DNS and dialled: traffic to hosts other than this one), and
# GET /v1/events (an SSE stream that does not end while the agent runs).
# Installs schemathesis from PyPI into a venv under the cargo target dir if missing.
# Exits non-zero when schemathesis finds a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES=${MAX_EXAMPLES:-25}
RUN_BOUND=${RUN_BOUND:-600}
target=${CARGO_TARGET_DIR:-$PWD/target}
venv=${SCHEMATHESIS_VENV:-$target/schemathesis-venv}
started=$(date +%s)

if [ "$("$venv/bin/schemathesis" --version 2>/dev/null || true)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
    echo "installing schemathesis $SCHEMATHESIS_VERSION into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build --quiet --bin muster
muster=$target/debug/muster

work=$(mktemp -d)
agent_pid=
cleanup() {
    if [ -n "$agent_pid" ] && kill -0 "$agent_pid" 2>/dev/null; then
        kill "$agent_pid" 2>/dev/null || true
        wait "$agent_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# A token, so mutations are refused without one (the description says so).
token=$("$venv/bin/python" -c 'import secrets; print(secrets.token_hex(32))')
(umask 077 && printf '%s\n' "$token" >"$work/api.token")

"$muster" agent --dev --name st --bind 127.0.0.1:0 --api-addr 127.0.0.1:0 --dns-addr off \
    --api-token-file "$work/api.token" --log-format json >"$work/agent.log" 2>&1 &
agent_pid=$!

# The API's port, from the agent's log; then wait for /v1/health.
addr=
for _ in $(seq 1 300); do
    addr=$(grep -o '"api":"127\.0\.0\.1:[0-9]*"' "$work/agent.log" | head -n 1 | cut -d'"' -f4 || true)
    [ -n "$addr" ] && break
    kill -0 "$agent_pid" 2>/dev/null || { cat "$work/agent.log" >&2; echo "the agent exited" >&2; exit 1; }
    sleep 0.1
done
[ -n "$addr" ] || { cat "$work/agent.log" >&2; echo "the agent printed no API address" >&2; exit 1; }
for _ in $(seq 1 300); do
    curl -fsS "http://$addr/v1/health" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "http://$addr/v1/health" >/dev/null

# Something to find: two local services, one in primary mode. Path parameters that name
# a member or a service take one of the known names half the time, so those operations
# get past their 404.
for spec in 'st-web {"port": 8080}' 'st-primary {"port": 8081, "mode": "primary", "priority": 1}'; do
    curl -fsS -o /dev/null -X PUT "http://$addr/v1/services/${spec%% *}" \
        -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
        --data "${spec#* }"
done
cat >"$work/schemathesis.toml" <<'TOML'
[dictionaries.names]
values = ["st", "st-web", "st-primary"]
[dictionaries.services]
values = ["st-web", "st-primary"]
[parameters]
"path.name" = { dictionary = "names", probability = 0.5 }
"path.service" = { dictionary = "services", probability = 0.5 }
# A drained primary-mode service has no primary: 503 by design (the run drains them).
[[operations]]
include-path = "/v1/services/{name}/primary"
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "503"]
TOML

report=${SCHEMATHESIS_REPORT:-$target/schemathesis-report}
mkdir -p "$report"
rm -f "$report/junit.xml"
report=$(cd "$report" && pwd)
status=0
# From the temporary directory: schemathesis keeps a cache of past crashes in the
# working directory, which would make one run depend on the last.
(cd "$work" && timeout --signal=INT --kill-after=30 "$RUN_BOUND" \
    "$venv/bin/schemathesis" --config-file "$work/schemathesis.toml" \
    run "http://$addr/v1/openapi.yaml" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "$MAX_EXAMPLES" \
    --exclude-operation-id leave \
    --exclude-operation-id join \
    --exclude-operation-id streamEvents \
    --request-timeout 20 \
    --workers 1 \
    --seed 15 \
    --generation-database none \
    --no-color \
    --report junit --report-junit-path "$report/junit.xml") || status=$?

if ! kill -0 "$agent_pid" 2>/dev/null; then
    echo "the agent died during the run; its log:" >&2
    tail -n 50 "$work/agent.log" >&2
    status=1
fi

# One line per operation in the JUnit report: passed or failed.
read -r passed failed < <("$venv/bin/python" - "$report/junit.xml" <<'EOF'
import sys
import xml.etree.ElementTree as ET
try:
    cases = ET.parse(sys.argv[1]).getroot().iter("testcase")
except (OSError, ET.ParseError):
    print(0, 0)
    sys.exit()
passed = failed = 0
for case in cases:
    if case.find("failure") is not None or case.find("error") is not None:
        failed += 1
    elif case.find("skipped") is None:
        passed += 1
print(passed, failed)
EOF
)
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
    failed=1
fi
echo "schemathesis took $(( $(date +%s) - started )) s; operations:"
echo "schemathesis: $passed passed, $failed failed"
exit "$status"
