#!/usr/bin/env bash
# CI checks of the shipped deployment files (deploy/), bounded to 8 minutes:
#   tools      install what the checks need (apt: systemd, podman, runc, busybox-static,
#              the CNI dnsname plugin; PyPI: kubernetes-validate, pinned, in a venv)
#   binary     the agent binary: $MUSTER_BIN, else `cargo build --profile dist --locked`
#   systemd    systemd-analyze verify (no output allowed) and security (exposure at most
#              2.0) of muster.service with the real binary at its ExecStart path;
#              muster.sysusers applied to an empty root; muster.toml passes --check-config
#   manifests  kubernetes-validate --strict against Kubernetes 1.30 and 1.37 (its own
#              offline schemas), and deploy/lint.py (the files against the agent and
#              each other)
#   container  build the image (deploy/container/build.sh), inspect it, lint it against
#              the manifests, find how `podman run` works on this host, then run three
#              agents that join, detect a kill, leave and stop (cluster-test.sh)
# Usage: deploy/check.sh          (from anywhere; exits 1 if any check failed)
# Environment: MUSTER_BIN=path    reuse a built binary (no cargo build)
#              MUSTER_DEPLOY_SKIP_CONTAINERS=1   skip the container step (reported SKIP)
#              MUSTER_DEPLOY_CACHE=dir           where the venv lives
#                                                (default ~/.cache/muster-deploy)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
self="$here/check.sh"

KUBE_VALIDATE_VERSION="1.37.0"
KUBE_VERSIONS="1.30.0 1.37.0"
# systemd-analyze security's scale is 0..100 (shown as 0.0..10.0).
SECURITY_THRESHOLD=20
IMAGE="localhost/muster:check"
TOTAL_BUDGET=470
# The exit status of a step that could not run on this host (reported SKIP, not FAIL).
SKIPPED=3

export MUSTER_DEPLOY_CACHE="${MUSTER_DEPLOY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/muster-deploy}"
export MUSTER_DEPLOY_WORK="${MUSTER_DEPLOY_WORK:-}"

say() { echo "check[$step_name]: $*"; }
die() { echo "check[$step_name]: FAIL: $*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

# --- the steps, each run as `check.sh step NAME` under a timeout -------------------

step_tools() {
    local missing=()
    have systemd-analyze || missing+=(systemd)
    have systemd-sysusers || missing+=(systemd)
    have podman || missing+=(podman)
    have runc || missing+=(runc)
    { [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || missing+=(busybox-static)
    have python3 || missing+=(python3)
    if [ ${#missing[@]} -gt 0 ]; then
        [ "$(id -u)" = 0 ] || die "missing ${missing[*]}; run as root or install them"
        say "apt-get install ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    fi
    # Containers on one network find each other by name through the network backend's
    # DNS: the dnsname plugin with CNI, aardvark-dns with netavark.
    local backend
    backend="$(podman info --format '{{.Host.NetworkBackend}}' 2>/dev/null || echo unknown)"
    local dns_pkg=""
    case "$backend" in
        cni) [ -x /usr/lib/cni/dnsname ] || dns_pkg=golang-github-containernetworking-plugin-dnsname ;;
        netavark) have aardvark-dns || [ -x /usr/lib/podman/aardvark-dns ] || dns_pkg=aardvark-dns ;;
    esac
    if [ -n "$dns_pkg" ]; then
        [ "$(id -u)" = 0 ] || die "missing $dns_pkg (container name resolution); run as root"
        say "apt-get install $dns_pkg (network backend $backend)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q --no-install-recommends "$dns_pkg" >/dev/null \
            || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "$dns_pkg" >/dev/null; }
    fi
    local venv="$MUSTER_DEPLOY_CACHE/venv"
    local installed
    installed="$("$venv/bin/kubernetes-validate" --version 2>/dev/null || true)"
    if ! grep -qF "$KUBE_VALIDATE_VERSION" <<< "$installed"; then
        say "pip install kubernetes-validate==$KUBE_VALIDATE_VERSION into $venv"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$KUBE_VALIDATE_VERSION"
    fi
    local systemd_version
    systemd_version="$(systemd-analyze --version)"
    systemd_version="${systemd_version%%$'\n'*}"
    say "${systemd_version%% (*}, podman $(podman --version | cut -d' ' -f3) ($backend), kubernetes-validate $KUBE_VALIDATE_VERSION"
}

step_binary() {
    local bin
    if [ -n "${MUSTER_BIN:-}" ]; then
        bin="$MUSTER_BIN"
        say "using MUSTER_BIN=$bin"
    else
        say "cargo build --profile dist --locked --bin muster"
        (cd "$repo" && cargo build --profile dist --locked --bin muster 2>&1 | tail -3)
        bin="${CARGO_TARGET_DIR:-$repo/target}/dist/muster"
    fi
    [ -x "$bin" ] || die "no executable at $bin"
    "$bin" --version >/dev/null || die "$bin --version failed"
    cp "$bin" "$MUSTER_DEPLOY_WORK/muster"
    say "$("$bin" --version), $(du -h "$bin" | cut -f1)"
}

step_systemd() {
    local bin="$MUSTER_DEPLOY_WORK/muster" unit="$here/systemd/muster.service"
    [ -x "$bin" ] || die "no agent binary (the binary step failed)"
    # A root holding the unit, the binary at the unit's ExecStart path, and the
    # distribution's units it refers to (network-online.target, multi-user.target).
    local root="$MUSTER_DEPLOY_WORK/systemd-root"
    rm -rf "$root"
    mkdir -p "$root/etc/systemd/system" "$root/usr/lib/systemd" "$root/etc/muster"
    local exec_path
    exec_path="$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$unit")"
    [ -n "$exec_path" ] || die "no ExecStart= in $unit"
    install -D -m 0755 "$bin" "$root$exec_path"
    cp "$unit" "$root/etc/systemd/system/muster.service"
    local units
    for units in /usr/lib/systemd/system /lib/systemd/system; do
        [ -d "$units" ] && { cp -a "$units" "$root/usr/lib/systemd/"; break; }
    done
    # verify exits 0 on unknown keys and bad values: any output is a failure.
    local out
    out="$(systemd-analyze verify --root="$root" muster.service 2>&1)" || die "systemd-analyze verify: $out"
    [ -z "$out" ] || die "systemd-analyze verify printed: $out"
    say "systemd-analyze verify: clean"
    if ! out="$(systemd-analyze security --offline=yes --root="$root" \
            --threshold="$SECURITY_THRESHOLD" muster.service 2>&1)"; then
        echo "$out" | grep -E '✗|Overall' >&2 || true
        die "systemd-analyze security: exposure above $SECURITY_THRESHOLD/100"
    fi
    say "systemd-analyze security: ${out##*Overall }"

    local sroot="$MUSTER_DEPLOY_WORK/sysusers-root"
    rm -rf "$sroot" && mkdir -p "$sroot/etc"
    systemd-sysusers --root="$sroot" "$here/systemd/muster.sysusers" 2>/dev/null
    grep -q '^muster:x:[0-9]*:[0-9]*:.*:/usr/sbin/nologin$' "$sroot/etc/passwd" \
        || die "muster.sysusers made no muster user: $(cat "$sroot/etc/passwd" 2>/dev/null)"
    grep -q '^User=muster$' "$unit" || die "the unit does not run as User=muster"
    say "muster.sysusers creates: $(grep '^muster:' "$sroot/etc/passwd")"

    # The sample config as the unit runs it: the key through MUSTER_CLUSTER_KEY_FILE.
    grep -q -- '--config /etc/muster/muster.toml' "$unit" || die "ExecStart does not read /etc/muster/muster.toml"
    "$bin" keygen --out "$MUSTER_DEPLOY_WORK/cluster.key" 2>/dev/null
    MUSTER_CLUSTER_KEY_FILE="$MUSTER_DEPLOY_WORK/cluster.key" \
        "$bin" agent --config "$here/systemd/muster.toml" --check-config >/dev/null \
        || die "muster.toml does not pass --check-config"
    say "muster.toml passes muster agent --check-config"
}

step_manifests() {
    local venv="$MUSTER_DEPLOY_CACHE/venv" v
    [ -x "$venv/bin/kubernetes-validate" ] || die "no kubernetes-validate (the tools step failed)"
    local manifests=("$here"/kubernetes/*.yaml)
    for v in $KUBE_VERSIONS; do
        "$venv/bin/kubernetes-validate" --strict --quiet -k "$v" "${manifests[@]}" \
            || die "kubernetes-validate --strict -k $v"
        say "kubernetes-validate --strict -k $v: ${manifests[*]##*/}"
    done
    "$venv/bin/python" "$here/lint.py" "$repo" || die "deploy/lint.py"
}

step_container() {
    local bin="$MUSTER_DEPLOY_WORK/muster" venv="$MUSTER_DEPLOY_CACHE/venv"
    [ -x "$bin" ] || die "no agent binary (the binary step failed)"
    MUSTER_BIN="$bin" "$here/container/build.sh" "$IMAGE" >/dev/null 2>"$MUSTER_DEPLOY_WORK/build.log" \
        || { tail -20 "$MUSTER_DEPLOY_WORK/build.log" >&2; die "image build"; }
    local user entry health size
    user="$(podman image inspect -f '{{.Config.User}}' "$IMAGE")"
    entry="$(podman image inspect -f '{{json .Config.Entrypoint}}' "$IMAGE")"
    health="$(podman image inspect -f '{{json .Config.Healthcheck.Test}}' "$IMAGE")"
    size="$(podman image inspect -f '{{.Size}}' "$IMAGE")"
    [ "${user%%:*}" = 10001 ] || die "the image runs as '$user', not 10001"
    [ "$entry" = '["/usr/local/bin/muster"]' ] || die "entrypoint $entry"
    grep -q '/v1/health' <<< "$health" || die "no HEALTHCHECK on /v1/health: $health"
    say "image $IMAGE: user $user, entrypoint $entry, $(( size / 1000000 )) MB, HEALTHCHECK $health"

    local id
    id="$(podman create "$IMAGE" 2>/dev/null)"
    podman export "$id" | tar -t | sed 's|^\./||; s|^|/|' > "$MUSTER_DEPLOY_WORK/image-files.txt"
    podman rm -v "$id" >/dev/null 2>&1
    "$venv/bin/python" "$here/lint.py" "$repo" --image-files "$MUSTER_DEPLOY_WORK/image-files.txt" \
        --probes-out "$MUSTER_DEPLOY_WORK/probes.json" || die "deploy/lint.py against the image"

    # How `podman run` works here. Plain first; a sandbox without CAP_SYS_RESOURCE cannot
    # take podman's default rlimits (nofile 1048576, nproc 4194304) and needs lower ones;
    # crun refuses hybrid cgroup v1/v2 hosts where runc runs.
    local want nofile global="" opts="" out
    want="$("$bin" --version)"
    nofile="$(ulimit -Hn)"
    [ "$nofile" = unlimited ] || [ "$nofile" -gt 65536 ] && nofile=65536
    local limits="--ulimit nofile=$nofile:$nofile --ulimit nproc=4096:4096"
    local tried=0 found=""
    for attempt in "|" "|$limits" "--runtime runc|$limits"; do
        global="${attempt%%|*}"
        opts="${attempt#*|}"
        tried=$((tried + 1))
        # shellcheck disable=SC2086
        if out="$(timeout 60 podman $global run --rm $opts "$IMAGE" --version 2>&1)" \
                && grep -qxF "$want" <<< "$out"; then
            found=yes
            break
        fi
        say "podman ${global:+$global }run ${opts:+$opts }: $(grep -v 'systemd connection' <<< "$out" | tail -1)"
    done
    # A host where no container runs at all (a sandbox without user namespaces or
    # cgroups) is not the image's fault: the build and the lint above still ran.
    if [ -z "$found" ]; then
        say "SKIP: podman run works with none of the option sets above on this host"
        exit "$SKIPPED"
    fi
    say "podman ${global:+$global }run ${opts:+$opts }$IMAGE --version: $want"

    local volumes_before volumes_after
    volumes_before="$(podman volume ls -q | wc -l)"
    PODMAN_GLOBAL_OPTS="$global" PODMAN_RUN_OPTS="$opts" PROBES_JSON="$MUSTER_DEPLOY_WORK/probes.json" \
        "$here/container/cluster-test.sh" "$IMAGE" 2> >(grep -v 'systemd connection' >&2) \
        || die "cluster-test.sh"
    volumes_after="$(podman volume ls -q | wc -l)"
    (( volumes_after <= volumes_before )) \
        || die "cluster-test.sh left $(( volumes_after - volumes_before )) podman volume(s) behind"
}

if [ "${1:-}" = step ]; then
    step_name="$2"
    "step_$2"
    exit 0
fi

# --- the driver: each step under a timeout, a summary, exit status -------------------

step_name=main
MUSTER_DEPLOY_WORK="$(mktemp -d)"
export MUSTER_DEPLOY_WORK
cleanup() {
    podman rmi -f "$IMAGE" >/dev/null 2>&1 || true
    rm -rf "$MUSTER_DEPLOY_WORK"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

declare -a names results times
failed=0
started=$SECONDS
run_step() { # run_step NAME LIMIT_SECONDS
    local name="$1" limit="$2" left t0 rc
    left=$(( TOTAL_BUDGET - (SECONDS - started) ))
    (( left < limit )) && limit=$left
    t0=$SECONDS
    if (( limit <= 5 )); then
        echo "check[$name]: FAIL: no time left in the ${TOTAL_BUDGET}s budget" >&2
        rc=124
    else
        echo "== $name (at most ${limit}s)"
        set +e
        timeout --kill-after=10 "$limit" "$self" step "$name"
        rc=$?
        set -e
        (( rc == 124 || rc == 137 )) && echo "check[$name]: FAIL: timed out after ${limit}s" >&2
    fi
    names+=("$name")
    times+=("$(( SECONDS - t0 ))s")
    if (( rc == 0 )); then results+=(PASS)
    elif (( rc == SKIPPED )); then results+=("SKIP (no container runtime works here)")
    else results+=(FAIL); failed=$((failed + 1)); fi
}
skip_step() { names+=("$1"); times+=("0s"); results+=("SKIP ($2)"); echo "== $1: SKIP ($2)"; }

run_step tools 200
run_step binary 360
run_step systemd 60
run_step manifests 60
if [ "${MUSTER_DEPLOY_SKIP_CONTAINERS:-}" = 1 ]; then
    skip_step container "MUSTER_DEPLOY_SKIP_CONTAINERS=1"
else
    run_step container 240
fi

echo
echo "deploy checks, $(( SECONDS - started ))s:"
passed=0 skipped=0
for i in "${!names[@]}"; do
    printf '  %-10s %-6s %s\n' "${names[$i]}" "${times[$i]}" "${results[$i]}"
    case "${results[$i]}" in PASS) passed=$((passed + 1)) ;; SKIP*) skipped=$((skipped + 1)) ;; esac
done
echo "deploy: $passed passed, $failed failed, $skipped skipped"
(( failed == 0 ))
