#!/usr/bin/env bash
# Builds the muster agent image from deploy/container/Containerfile, offline:
#   deploy/container/build.sh [IMAGE]          (default IMAGE: localhost/muster:dev)
# The agent binary is $MUSTER_BIN if set, else built here with
# `cargo build --profile dist --locked` (CARGO_TARGET_DIR is honoured).
# Needs podman (apt-get install podman), ldd (libc-bin) and busybox's static build
# (apt-get install busybox-static) for the health-check client.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
image="${1:-localhost/muster:dev}"

if [ -n "${MUSTER_BIN:-}" ]; then
    bin="$MUSTER_BIN"
else
    (cd "$repo" && cargo build --profile dist --locked --bin muster)
    bin="${CARGO_TARGET_DIR:-$repo/target}/dist/muster"
fi
[ -x "$bin" ] || { echo "build.sh: no executable agent binary at $bin" >&2; exit 1; }

busybox=""
for candidate in /bin/busybox /usr/bin/busybox; do
    # Only a statically linked busybox works in an image without its libraries.
    if [ -x "$candidate" ] && ! ldd "$candidate" >/dev/null 2>&1; then
        busybox="$candidate"
        break
    fi
done
[ -n "$busybox" ] || { echo "build.sh: no static busybox (apt-get install busybox-static)" >&2; exit 1; }

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
root="$ctx/rootfs"
mkdir -p "$root/usr/local/bin" "$root/etc/muster" "$ctx/data"

install -m 0755 "$bin" "$root/usr/local/bin/muster"
# busybox runs the applet its file is named after: this file is only wget.
install -m 0755 "$busybox" "$root/usr/local/bin/wget"

# The shared libraries the binary links, at the paths the dynamic loader looks for them
# (the loader itself at the path written in the binary), dereferenced.
libs=$(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
[ -n "$libs" ] || { echo "build.sh: ldd found no libraries for $bin (a static binary needs none; adjust)" >&2; exit 1; }
for lib in $libs; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done

cat > "$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
muster:x:10001:10001:Muster membership agent:/var/lib/muster:/sbin/nologin
PASSWD
cat > "$root/etc/group" <<'GROUP'
root:x:0:
muster:x:10001:
GROUP
# Seeds are names: look in /etc/hosts, then DNS (the container runtime provides both).
echo 'hosts: files dns' > "$root/etc/nsswitch.conf"

podman build --format docker --pull=never -t "$image" -f "$here/Containerfile" "$ctx" >&2
echo "$image"
