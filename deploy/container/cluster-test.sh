#!/usr/bin/env bash
# Runs three agents from the image in containers on a private podman network, seeded by
# container name, and checks what an operator relies on:
#   1. all three report healthy (HEALTHCHECK and GET /v1/health) and see 3 alive members,
#      while a fourth whose seed never resolves runs but fails both;
#   2. `podman kill` (SIGKILL) of one: the other two mark it failed;
#   3. `muster leave` in another (the Kubernetes preStop): it exits 0, the last one sees
#      it left;
#   4. `podman stop` (SIGTERM) of the last: a graceful leave, exit 0, within the timeout.
# Usage: deploy/container/cluster-test.sh IMAGE
# Environment: PROBES_JSON: the Kubernetes manifests' probe and preStop commands (from
# deploy/lint.py), run instead of the built-in copies; PODMAN_RUN_OPTS: extra `podman run`
# options this host needs, and PODMAN_GLOBAL_OPTS: options before the podman command
# (e.g. --runtime runc); check.sh finds both.
# Cleans up its containers, network and key whatever happens. Exits 0 only if every
# check passed.
set -euo pipefail

image="${1:?usage: cluster-test.sh IMAGE}"
prefix="muster-check"
net="$prefix-net"
# A subnet of our own, on this machine only (the containers' network namespaces).
subnet="10.204.7"
read -r -a global <<< "${PODMAN_GLOBAL_OPTS:-}"
read -r -a runopts <<< "${PODMAN_RUN_OPTS:-}"
pm() { podman "${global[@]}" "$@"; }

keydir="$(mktemp -d)"
cleanup() {
    for i in 0 1 2 3; do pm rm -f -t 0 -v "$prefix-$i" >/dev/null 2>&1 || true; done
    pm network rm -f "$net" >/dev/null 2>&1 || true
    rm -rf "$keydir"
}
trap cleanup EXIT
# A timeout's SIGTERM still cleans up (through the EXIT trap).
trap 'exit 143' TERM INT
cleanup_logs() {
    for i in 0 1 2 3; do
        echo "--- logs of $prefix-$i (last 20 lines)" >&2
        pm logs --tail 20 "$prefix-$i" >&2 2>&1 || true
    done
}
fail() { echo "cluster-test: FAIL: $*" >&2; cleanup_logs; exit 1; }
step() { echo "cluster-test: $*"; }

# Leftovers of an interrupted run (our names only).
for i in 0 1 2 3; do pm rm -f -t 0 -v "$prefix-$i" >/dev/null 2>&1 || true; done
pm network rm -f "$net" >/dev/null 2>&1 || true

pm network create --subnet "$subnet.0/24" "$net" >/dev/null

# The cluster key, as an operator would mount it: one file, readable by the agent only.
pm run --rm "${runopts[@]}" --user 0 --entrypoint /usr/local/bin/muster "$image" keygen \
    > "$keydir/cluster.key"
grep -q '^muster-key-v1:' "$keydir/cluster.key" || fail "keygen in the image printed no key"
chown 10001:10001 "$keydir/cluster.key"
chmod 0600 "$keydir/cluster.key"

seeds="$prefix-1:7946,$prefix-2:7946,$prefix-3:7946"
for i in 1 2 3; do
    ip="$subnet.1$i"
    pm run -d --name "$prefix-$i" --hostname "$prefix-$i" "${runopts[@]}" \
        --network "$net" --ip "$ip" --read-only \
        -v "$keydir/cluster.key:/etc/muster/cluster.key:ro" \
        -e MUSTER_ADVERTISE="$ip:7946" -e MUSTER_JOIN="$seeds" \
        -e MUSTER_REGION=check -e MUSTER_ZONE="check-$i" \
        "$image" agent --log-format json >/dev/null 2>"$keydir/run-$i.err" \
        || { cat "$keydir/run-$i.err" >&2; fail "podman run of $prefix-$i"; }
done
pm run -d --name "$prefix-0" --hostname "$prefix-0" "${runopts[@]}" \
    --network "$net" --ip "$subnet.10" --read-only \
    -v "$keydir/cluster.key:/etc/muster/cluster.key:ro" \
    -e MUSTER_ADVERTISE="$subnet.10:7946" -e MUSTER_JOIN="$prefix-nobody:7946" \
    "$image" >/dev/null 2>"$keydir/run-0.err" \
    || { cat "$keydir/run-0.err" >&2; fail "podman run of $prefix-0"; }
step "started $prefix-1..3 on $net ($subnet.0/24), seeds by container name, and $prefix-0 with a seed that never resolves"

# `muster members --json` of container $1, as "name=status" lines.
members() {
    pm exec "$1" /usr/local/bin/muster members --json 2>/dev/null \
        | python3 -c 'import json,sys; [print(m["name"] + "=" + m["status"]) for m in json.load(sys.stdin)]'
}
# The Kubernetes manifests' readiness, liveness and preStop commands (deploy/lint.py
# writes them to $PROBES_JSON), so this runs exactly what the kubelet would; without the
# file, the same commands as written in deploy/kubernetes/.
ready_cmd=(/usr/local/bin/wget -q -O - http://127.0.0.1:7947/v1/health)
live_cmd=(/usr/local/bin/wget -q -O /dev/null http://127.0.0.1:7947/v1/self)
stop_cmd=(/usr/local/bin/muster leave)
if [ -n "${PROBES_JSON:-}" ]; then
    probe() { python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))[sys.argv[2]]))' "$PROBES_JSON" "$1"; }
    mapfile -t ready_cmd < <(probe readiness)
    mapfile -t live_cmd < <(probe liveness)
    mapfile -t stop_cmd < <(probe preStop)
    step "probes from $PROBES_JSON: readiness '${ready_cmd[*]}', liveness '${live_cmd[*]}', preStop '${stop_cmd[*]}'"
fi
# The readiness probe inside container $1 (GET /v1/health): exit 0 on 200.
healthy() { pm exec "$1" "${ready_cmd[@]}" >/dev/null 2>&1; }
# Polls `$@` until it succeeds or $deadline seconds pass.
until_true() {
    local deadline="$1" what="$2"; shift 2
    local start=$SECONDS
    until "$@"; do
        (( SECONDS - start < deadline )) || fail "$what: not within ${deadline}s"
        sleep 1
    done
    step "$what (after $(( SECONDS - start ))s)"
}
all_see() { # all_see STATUS-LINE... in every running container named in $watchers
    local c line
    for c in $watchers; do
        local got; got="$(members "$c")" || return 1
        for line in "$@"; do grep -qx "$line" <<< "$got" || return 1; done
    done
}
exited_with() { # exited_with CONTAINER CODE
    [ "$(pm inspect -f '{{.State.Status}}' "$1")" = exited ] \
        && [ "$(pm inspect -f '{{.State.ExitCode}}' "$1")" = "$2" ]
}

all_healthy() { healthy "$prefix-1" && healthy "$prefix-2" && healthy "$prefix-3"; }
until_true 60 "all three answer 200 on /v1/health" all_healthy
watchers="$prefix-1 $prefix-2 $prefix-3"
until_true 30 "each sees 3 alive members" \
    all_see "$prefix-1=alive" "$prefix-2=alive" "$prefix-3=alive"
for i in 1 2 3; do
    pm healthcheck run "$prefix-$i" >/dev/null 2>&1 || fail "HEALTHCHECK of $prefix-$i is not healthy"
done
step "the image's HEALTHCHECK passes in all three"
# The other side: an agent whose only seed never resolves runs (its API answers) but is
# not joined, so /v1/health says 503 and the HEALTHCHECK must say unhealthy.
pm exec "$prefix-0" "${live_cmd[@]}" >/dev/null 2>&1 \
    || fail "$prefix-0 fails the liveness probe: its API does not answer"
if healthy "$prefix-0"; then fail "/v1/health of $prefix-0, which joined nobody, answers 200"; fi
if pm healthcheck run "$prefix-0" >/dev/null 2>&1; then
    fail "HEALTHCHECK of $prefix-0, which joined nobody, passes"
fi
step "an agent that joined nobody answers 503 on /v1/health and fails the HEALTHCHECK"
pm rm -f -t 0 -v "$prefix-0" >/dev/null

pm kill "$prefix-3" >/dev/null
watchers="$prefix-1 $prefix-2"
until_true 60 "after podman kill, $prefix-1 and $prefix-2 mark $prefix-3 failed" \
    all_see "$prefix-3=failed" "$prefix-1=alive" "$prefix-2=alive"

# The Kubernetes preStop, `muster leave`: it finds the token in the data dir by itself.
pm exec "$prefix-2" "${stop_cmd[@]}" >/dev/null \
    || fail "the preStop command (${stop_cmd[*]}) in $prefix-2 failed"
until_true 30 "muster leave: $prefix-2 exits 0" exited_with "$prefix-2" 0
watchers="$prefix-1"
until_true 30 "$prefix-1 sees $prefix-2 left" all_see "$prefix-2=left"

start=$SECONDS
pm stop -t 30 "$prefix-1" >/dev/null
took=$(( SECONDS - start ))
exited_with "$prefix-1" 0 || fail "podman stop: $prefix-1 exited $(pm inspect -f '{{.State.ExitCode}}' "$prefix-1"), not 0"
(( took < 30 )) || fail "podman stop took ${took}s: SIGTERM did not end the agent, SIGKILL did"
# (Not `podman logs | grep -q`: grep quitting early fails the pipe under pipefail.)
logs="$(pm logs "$prefix-1" 2>&1)"
grep -q 'leaving the cluster' <<< "$logs" || fail "$prefix-1 logged no graceful leave"
step "podman stop (SIGTERM): $prefix-1 left gracefully and exited 0 in ${took}s"
step "passed"
