#!/usr/bin/env python3
"""Checks of deploy/ that a schema cannot make: that the files agree with the agent and
with each other. Run by deploy/check.sh (needs PyYAML, which kubernetes-validate brings).

    lint.py REPO [--image-files LIST] [--probes-out FILE]

- every MUSTER_* variable set in the unit, the Containerfile and the manifests is one
  `muster agent` reads (ENV_SETTINGS in src/daemon/overrides.rs);
- the Kubernetes manifests: a headless Service with not-ready addresses published and
  only the gossip port (UDP 7946); StatefulSet/PDB/Service selectors that match the pod
  labels; a grace period of at least 30 s; exec probes on /v1/health (readiness), a
  preStop `muster leave`, a data volume where MUSTER_DATA_DIR points, the cluster key
  where MUSTER_CLUSTER_KEY_FILE points, seeds naming the Service;
- with --image-files (the image's file list), every command the manifests run exists
  in the image;
- with --probes-out, writes the readiness, liveness and preStop commands as JSON, so the
  container test runs exactly those.

Prints one line per problem and exits 1 if there is any.
"""

import json
import re
import sys
from pathlib import Path

import yaml

problems = []


def check(ok, message):
    if not ok:
        problems.append(message)
    return ok


def agent_variables(repo):
    """The MUSTER_* names `muster agent` reads: MUSTER_ and each key of ENV_SETTINGS in
    src/daemon/overrides.rs, in capitals."""
    source = (repo / "src/daemon/overrides.rs").read_text()
    source = source.split("#[cfg(test)]")[0]
    table = source.split("const ENV_SETTINGS", 1)[-1].split("];", 1)[0]
    names = {"MUSTER_" + key.upper() for key in re.findall(r'\("([a-z_]+)", EnvKind::', table)}
    check(len(names) >= 10, f"found only {sorted(names)} in src/daemon/overrides.rs")
    return names


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def check_workload(path, docs, known, image_files, probes):
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    where = path.name
    services = by_kind.get("Service", [])
    workloads = by_kind.get("StatefulSet", []) + by_kind.get("DaemonSet", [])
    if not check(len(services) == 1 and len(workloads) == 1,
                 f"{where}: expected one Service and one StatefulSet or DaemonSet"):
        return
    svc, wl = services[0], workloads[0]
    spec = svc["spec"]
    check(spec.get("clusterIP") == "None", f"{where}: the Service is not headless")
    check(spec.get("publishNotReadyAddresses") is True,
          f"{where}: the Service must publish not-ready addresses (agents join through it before they are ready)")
    ports = [(p["port"], p.get("protocol", "TCP")) for p in spec["ports"]]
    check(ports == [(7946, "UDP")], f"{where}: the Service exposes {ports}, not only UDP 7946")

    pod = wl["spec"]["template"]
    labels = pod["metadata"]["labels"]
    selects = lambda sel: all(labels.get(k) == v for k, v in sel.items())
    check(selects(wl["spec"]["selector"]["matchLabels"]), f"{where}: the selector misses the pod labels")
    check(selects(spec["selector"]), f"{where}: the Service's selector misses the pod labels")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        check(selects(pdb["spec"]["selector"]["matchLabels"]), f"{where}: the PDB's selector misses the pod labels")
    if wl["kind"] == "StatefulSet":
        check(wl["spec"]["serviceName"] == svc["metadata"]["name"], f"{where}: serviceName is not the Service")
        check(wl["spec"].get("podManagementPolicy") == "Parallel",
              f"{where}: podManagementPolicy must be Parallel (a pod is ready only once it joined another)")
        check(len(by_kind.get("PodDisruptionBudget", [])) == 1, f"{where}: no PodDisruptionBudget")
    else:
        check(pod["spec"].get("hostNetwork") is True, f"{where}: the DaemonSet is not on the host network")
        check(pod["spec"].get("dnsPolicy") == "ClusterFirstWithHostNet",
              f"{where}: with hostNetwork, dnsPolicy must be ClusterFirstWithHostNet to resolve the Service")

    ps = pod["spec"]
    check(ps.get("terminationGracePeriodSeconds", 30) >= 30,
          f"{where}: terminationGracePeriodSeconds under 30 s cuts a wan leave (22 s) short")
    check(ps.get("securityContext", {}).get("runAsNonRoot") is True, f"{where}: not runAsNonRoot")
    (c,) = ps["containers"]
    env = env_of(c)
    for name in env:
        if name.startswith("MUSTER_"):
            check(name in known, f"{where}: {name} is not a variable the agent reads")
    for name in ("MUSTER_NAME", "MUSTER_JOIN", "MUSTER_DATA_DIR", "MUSTER_CLUSTER_KEY_FILE"):
        check(name in env, f"{where}: {name} is not set")
    check(("MUSTER_ADVERTISE" in env) or ("MUSTER_BIND" in env and "0.0.0.0" not in env["MUSTER_BIND"].get("value", "")),
          f"{where}: neither MUSTER_ADVERTISE nor a concrete MUSTER_BIND")
    join = env.get("MUSTER_JOIN", {}).get("value", "")
    check(join.startswith(svc["metadata"]["name"] + "."),
          f"{where}: MUSTER_JOIN {join!r} does not name the Service {svc['metadata']['name']!r}")
    if ":" not in join:
        # A seed without a port is read as _muster._udp.NAME SRV records: the Service
        # publishes them only for a UDP port named `muster`.
        check(any(p.get("name") == "muster" and p.get("protocol") == "UDP" and p.get("port") == 7946
                  for p in svc["spec"].get("ports", [])),
              f"{where}: MUSTER_JOIN {join!r} has no port, but the Service has no UDP port named 'muster'")
    else:
        check(join.endswith(":7946"), f"{where}: MUSTER_JOIN {join!r} is not on port 7946")
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    data_dir = env.get("MUSTER_DATA_DIR", {}).get("value")
    check(data_dir in mounts, f"{where}: no volume at MUSTER_DATA_DIR {data_dir}")
    key = env.get("MUSTER_CLUSTER_KEY_FILE", {}).get("value")
    check(key in mounts and mounts[key].get("readOnly") is True,
          f"{where}: the cluster key {key} is not a read-only mount")
    check(c.get("securityContext", {}).get("readOnlyRootFilesystem") is True, f"{where}: root file system is writable")

    ready = c.get("readinessProbe", {}).get("exec", {}).get("command", [])
    live = c.get("livenessProbe", {}).get("exec", {}).get("command", [])
    stop = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    check(any("/v1/health" in a for a in ready), f"{where}: the readiness probe does not ask /v1/health")
    check(live and not any("/v1/health" in a for a in live),
          f"{where}: the liveness probe must exist and not be /v1/health (a partition is not cured by a restart)")
    check(stop[-1:] == ["leave"] and stop[0].endswith("/muster"), f"{where}: preStop is not `muster leave`")
    for command in (ready, live, stop):
        if image_files is not None and command:
            check(command[0] in image_files, f"{where}: {command[0]} is not in the image")
    for kind, command in (("readiness", ready), ("liveness", live), ("preStop", stop)):
        previous = probes.setdefault(kind, command)
        check(previous == command, f"{where}: the {kind} command differs between the manifests")


def check_containerfile(path, known):
    text = path.read_text()
    for name in re.findall(r"\b(MUSTER_[A-Z_]+)=", text):
        check(name in known, f"{path.name}: ENV {name} is not a variable the agent reads")
    check(re.search(r"^HEALTHCHECK .*/v1/health", text, re.M | re.S) is not None,
          f"{path.name}: no HEALTHCHECK on /v1/health")
    check(re.search(r"^USER 10001", text, re.M) is not None, f"{path.name}: not USER 10001")


def check_unit(path, known):
    for line in path.read_text().splitlines():
        m = re.match(r"Environment=(MUSTER_[A-Z_]+)=", line)
        if m:
            check(m.group(1) in known, f"{path.name}: {m.group(1)} is not a variable the agent reads")


def main():
    args = sys.argv[1:]
    repo = Path(args[0])
    image_files = None
    probes_out = None
    if "--image-files" in args:
        image_files = {"/" + l.strip().lstrip("./") for l in
                       Path(args[args.index("--image-files") + 1]).read_text().splitlines()}
    if "--probes-out" in args:
        probes_out = Path(args[args.index("--probes-out") + 1])
    known = agent_variables(repo)
    probes = {}
    for path in sorted((repo / "deploy/kubernetes").glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        check_workload(path, docs, known, image_files, probes)
    check_containerfile(repo / "deploy/container/Containerfile", known)
    check_unit(repo / "deploy/systemd/muster.service", known)
    for p in problems:
        print(f"lint: {p}")
    if probes_out is not None:
        probes_out.write_text(json.dumps(probes))
    print(f"lint: {len(problems)} problem(s) in deploy/")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
