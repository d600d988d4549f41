"""Stand-ins for ``kubeadm``, ``kubectl``, ``kubelet`` and ``systemctl`` on namespace hosts (kubeadm joins).

One Python script, installed under each name, acts by the name it was called with. It records every
call (host, argv) in a JSON-lines file shared by the whole lab, and answers in the real tools' output
formats. The hosts share a "cluster" file (a JSON stand-in for the API server's store): ``kubeadm token
create`` on the front end adds a bootstrap token to it, ``kubeadm join`` on a board checks the token and
the CA hash and registers the node with the labels and taints of its JoinConfiguration, and ``kubectl``
on the front end reads and changes the nodes. ``systemctl`` keeps each board's unit states in its own
private /var/lib.

``release_mirror`` lays out the download mirror the edge_node role reads in kubeadm mode (dl.k8s.io and
GitHub release paths, with the published sha256 files), carrying the kubeadm and kubelet stand-ins.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

CA_HASH = "sha256:" + hashlib.sha256(b"test cluster CA public key").hexdigest()

STANDIN = r'''#!__PYTHON__
import fcntl, json, os, random, re, shutil, socket, string, subprocess, sys, time
from contextlib import contextmanager

CLUSTER = __CLUSTER__
CALLS = __CALLS__
VERSION = __VERSION__
ENDPOINT = __ENDPOINT__
CA_HASH = __CA_HASH__
ADMIN_CONF = "/etc/kubernetes/admin.conf"
MINOR = int(VERSION.split(".")[1])
NAME = os.path.basename(sys.argv[0])
ARGS = sys.argv[1:]

with open(CALLS, "a") as log:
    log.write(json.dumps({"host": socket.gethostname(), "argv": [NAME, *ARGS], "time": time.time()}) + "\n")


def fail(message, code=1):
    sys.stderr.write(message + "\n")
    sys.exit(code)


@contextmanager
def cluster():
    """The shared cluster store, locked for the whole command."""
    with open(CLUSTER + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with open(CLUSTER) as f:
            state = json.load(f)
        yield state
        with open(CLUSTER + ".tmp", "w") as f:
            json.dump(state, f, indent=1)
        os.replace(CLUSTER + ".tmp", CLUSTER)


def option(args, name, default=None):
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


def seconds(duration):
    total = 0
    for amount, unit in re.findall(r"(\d+)([hms])", duration):
        total += int(amount) * {"h": 3600, "m": 60, "s": 1}[unit]
    return total


def version_info():
    return {
        "major": "1", "minor": str(MINOR), "gitVersion": VERSION,
        "gitCommit": "e3a5a8d0b2fc4b0a5bbbbc6f9d3d8b0a1f6e7a11", "gitTreeState": "clean",
        "buildDate": "2024-08-14T19:00:00Z", "goVersion": "go1.22.5", "compiler": "gc",
        "platform": "linux/amd64",
    }


# --- systemctl (a board's init system) --------------------------------------------------------------
UNITS = "/var/lib/fake-systemd/units.json"


def units():
    try:
        with open(UNITS) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def save_units(state):
    os.makedirs(os.path.dirname(UNITS), exist_ok=True)
    with open(UNITS, "w") as f:
        json.dump(state, f)


def unit_name(name):
    return name if "." in name else name + ".service"


def systemctl():
    args = [a for a in ARGS if not a.startswith("-")]
    if not args:
        print("  UNIT LOAD ACTIVE SUB DESCRIPTION")
        return
    verb, names = args[0], [unit_name(n.strip("'")) for n in args[1:]]
    state = units()
    if verb == "daemon-reload":
        return
    for name in names:
        if not os.path.exists("/etc/systemd/system/" + name):
            if verb == "show":
                print(f"Id={name}\nLoadState=not-found\nActiveState=inactive\nSubState=dead\nUnitFileState=")
                return
            if verb == "is-enabled":
                fail(f"Failed to get unit file state for {name}: No such file or directory")
            fail(f"Failed to {verb} {name}: Unit {name} not found.", 5)
        unit = state.setdefault(name, {"enabled": False, "active": False})
        if verb == "show":
            active = "active" if unit["active"] else "inactive"
            print(f"Id={name}\nLoadState=loaded\nActiveState={active}\n"
                  f"SubState={'running' if unit['active'] else 'dead'}\n"
                  f"UnitFileState={'enabled' if unit['enabled'] else 'disabled'}")
        elif verb == "is-enabled":
            print("enabled" if unit["enabled"] else "disabled")
            if not unit["enabled"]:
                sys.exit(1)
        elif verb in ("enable", "disable"):
            unit["enabled"] = verb == "enable"
            if unit["enabled"]:
                sys.stderr.write(f"Created symlink /etc/systemd/system/multi-user.target.wants/{name} "
                                 f"-> /etc/systemd/system/{name}.\n")
        elif verb in ("start", "restart"):
            unit["active"] = True
            unit["starts"] = unit.get("starts", 0) + 1
        elif verb == "stop":
            unit["active"] = False
        else:
            fail(f"Unknown command verb {verb}.")
    save_units(state)


# --- kubectl (front end) ------------------------------------------------------------------------------
def node_json(node):
    out = {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": node["name"], "uid": node["uid"], "resourceVersion": str(node["rv"]),
            "creationTimestamp": node["created"], "labels": node["labels"],
            "annotations": {
                "kubeadm.alpha.kubernetes.io/cri-socket": node["cri_socket"],
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {"podCIDR": node["pod_cidr"], "podCIDRs": [node["pod_cidr"]]},
        "status": {
            "addresses": [{"type": "InternalIP", "address": node["address"]},
                          {"type": "Hostname", "address": node["name"]}],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "kubelet is posting ready status"}],
            "nodeInfo": {"architecture": "arm64", "kubeletVersion": node["kubelet_version"],
                         "containerRuntimeVersion": "containerd://1.7.22", "operatingSystem": "linux",
                         "osImage": "Debian GNU/Linux 12 (bookworm)"},
        },
    }
    if node["taints"]:
        out["spec"]["taints"] = node["taints"]
    if node.get("unschedulable"):
        out["spec"]["unschedulable"] = True
    return out


def kubectl():
    args = list(ARGS)
    kubeconfig = option(args, "--kubeconfig", ADMIN_CONF)
    if "--kubeconfig" in args:
        del args[args.index("--kubeconfig"):args.index("--kubeconfig") + 2]
    if not os.path.exists(kubeconfig):
        fail(f"error: stat {kubeconfig}: no such file or directory")
    api_down = os.path.exists("/etc/kubernetes/fake-api-down")
    refused = f"The connection to the server {ENDPOINT} was refused - did you specify the right host or port?"
    if args[:1] == ["version"]:
        client = {"clientVersion": version_info(), "kustomizeVersion": "v5.0.4-0.20230601165947-6ce0bf390ce3"}
        if api_down:
            print(json.dumps(client, indent=2))
            fail(refused)
        print(json.dumps({**client, "serverVersion": version_info()}, indent=2))
        return
    if api_down:
        fail(refused)
    verb = args[0]
    positional = [a for a in args[1:] if not a.startswith("-")]
    with cluster() as state:
        nodes = state["nodes"]
        if verb == "get" and positional[:1] == ["node"]:
            name = positional[1]
            output = option(args, "-o")
            if name not in nodes:
                if "--ignore-not-found" in args:
                    return
                fail(f'Error from server (NotFound): nodes "{name}" not found')
            print(json.dumps(node_json(nodes[name]), indent=4) if output == "json" else f"node/{name}")
        elif verb in ("label", "taint") and positional[:1] == ["node"]:
            name, changes = positional[1], positional[2:]
            if name not in nodes:
                fail(f'Error from server (NotFound): nodes "{name}" not found')
            node = nodes[name]
            for change in changes:
                if verb == "label":
                    key, value = change.split("=", 1)
                    if node["labels"].get(key, value) != value and "--overwrite" not in args:
                        fail(f"error: '{key}' already has a value ({node['labels'][key]}), and --overwrite is false")
                    node["labels"][key] = value
                else:
                    key_value, effect = change.rsplit(":", 1)
                    key, _, value = key_value.partition("=")
                    node["taints"] = [t for t in node["taints"] if (t["key"], t["effect"]) != (key, effect)]
                    node["taints"].append({"key": key, **({"value": value} if value else {}), "effect": effect})
            node["rv"] += 1
            print(f"node/{name} {'labeled' if verb == 'label' else 'tainted'}")
        elif verb == "drain":
            name = positional[0]
            if name not in nodes:
                fail(f'Error from server (NotFound): nodes "{name}" not found')
            nodes[name]["unschedulable"] = True
            print(f"node/{name} cordoned\nnode/{name} drained")
        elif verb == "delete" and positional[:1] == ["node"]:
            name = positional[1]
            if nodes.pop(name, None) is not None:
                print(f'node "{name}" deleted')
            elif "--ignore-not-found" not in args:
                fail(f'Error from server (NotFound): nodes "{name}" not found')
        else:
            fail(f'error: unknown command "{" ".join(args)}" for "kubectl"')


# --- kubeadm (front end: tokens; board: join, reset) --------------------------------------------------
def token_create():
    if not os.path.exists(option(ARGS, "--kubeconfig", ADMIN_CONF)):
        fail("failed to load admin kubeconfig: open /etc/kubernetes/admin.conf: no such file or directory")
    alphabet = string.ascii_lowercase + string.digits
    token = "".join(random.choices(alphabet, k=6)) + "." + "".join(random.choices(alphabet, k=16))
    with cluster() as state:
        state["tokens"][token] = time.time() + seconds(option(ARGS, "--ttl", "24h0m0s"))
    if "--print-join-command" in ARGS:
        print(f"kubeadm join {ENDPOINT} --token {token} --discovery-token-ca-cert-hash {CA_HASH} ")
    else:
        print(token)


def read_yaml(path):
    import yaml
    with open(path) as f:
        return yaml.safe_load(f)


def own_address():
    """The board's address towards the API server (a UDP connect sends nothing)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect((ENDPOINT.rsplit(":", 1)[0], 6443))
        return probe.getsockname()[0]
    finally:
        probe.close()


def join():
    config_path = option(ARGS, "--config")
    if config_path is None or len(ARGS) != 3:
        fail("this stand-in only joins with --config FILE (the deployer role's way)")
    config = read_yaml(config_path)
    api = config.get("apiVersion")
    known = ["kubeadm.k8s.io/v1beta3"] + (["kubeadm.k8s.io/v1beta4"] if MINOR >= 31 else [])
    if api not in known or config.get("kind") != "JoinConfiguration":
        fail(f'no kind "{config.get("kind")}" is registered for version "{api}" in scheme')
    print("[preflight] Running pre-flight checks")
    errors = []
    if os.path.exists("/etc/kubernetes/kubelet.conf"):
        errors.append("[ERROR FileAvailable--etc-kubernetes-kubelet.conf]: /etc/kubernetes/kubelet.conf already exists")
    if not units().get("containerd.service", {}).get("active"):
        errors.append("[ERROR CRI]: container runtime is not running: validate service connection: "
                      "rpc error: code = Unavailable desc = connection error")
    if not os.path.exists("/usr/local/bin/crictl"):
        errors.append("[ERROR FileExisting-crictl]: crictl not found in system path")
    kubelet = subprocess.run(["/usr/local/bin/kubelet", "--version"], capture_output=True, text=True)
    if kubelet.stdout.split()[-1:] != [VERSION]:
        errors.append(f"[ERROR KubeletVersion]: the kubelet version is {kubelet.stdout.strip()}, not {VERSION}")
    if errors:
        fail("error execution phase preflight: [preflight] Some fatal errors occurred:\n\t" + "\n\t".join(errors)
             + "\n[preflight] If you know what you are doing, you can make a check non-fatal with "
               "`--ignore-preflight-errors=...`")
    discovery = config["discovery"]["bootstrapToken"]
    registration = config["nodeRegistration"]
    with cluster() as state:
        token = discovery["token"]
        if state["tokens"].get(token, 0) < time.time():
            fail("error execution phase preflight: couldn't validate the identity of the API Server: could not "
                 f'find a JWS signature in the cluster-info ConfigMap for token ID "{token.split(".")[0]}"')
        if CA_HASH not in discovery.get("caCertHashes", []) or discovery["apiServerEndpoint"] != ENDPOINT:
            fail("error execution phase preflight: couldn't validate the identity of the API Server: cluster CA "
                 "found in cluster-info ConfigMap is invalid: none of the public keys match the pins")
        extra = registration.get("kubeletExtraArgs") or {}
        if isinstance(extra, list):
            extra = {arg["name"]: arg["value"] for arg in extra}
        labels = {"beta.kubernetes.io/arch": "arm64", "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": "arm64",
                  "kubernetes.io/hostname": registration["name"], "kubernetes.io/os": "linux"}
        labels.update(dict(pair.split("=", 1) for pair in extra.get("node-labels", "").split(",") if pair))
        taints = [{k: v for k, v in t.items() if v != ""} for t in registration.get("taints") or []]
        state["nodes"][registration["name"]] = {
            "name": registration["name"], "uid": "%08x-0000-4000-8000-%012x" % (random.getrandbits(32), random.getrandbits(48)),
            "rv": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "labels": labels,
            "taints": taints, "cri_socket": registration.get("criSocket", ""), "kubelet_version": VERSION,
            "address": own_address(), "pod_cidr": "10.244.%d.0/24" % (len(state["nodes"]) + 1),
        }
    os.makedirs("/var/lib/kubelet", exist_ok=True)
    with open("/var/lib/kubelet/config.yaml", "w") as f:
        f.write("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\n")
    with open("/var/lib/kubelet/kubeadm-flags.env", "w") as f:
        f.write(f'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint={registration.get("criSocket", "")}"\n')
    with open("/etc/kubernetes/kubelet.conf", "w") as f:
        f.write(f"apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://{ENDPOINT}\n  name: default-cluster\n")
    print("[preflight] Reading configuration from the cluster...")
    print("[kubelet-start] Writing kubelet configuration to file \"/var/lib/kubelet/config.yaml\"")
    print("[kubelet-start] Writing kubelet environment file with flags to file \"/var/lib/kubelet/kubeadm-flags.env\"")
    print("[kubelet-start] Starting the kubelet")
    subprocess.run(["systemctl", "restart", "kubelet"], check=True)
    print("[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap")
    print("\nThis node has joined the cluster:\n* Certificate signing request was sent to apiserver and a response was received.\n"
          "* The Kubelet was informed of the new secure connection details.\n\n"
          "Run 'kubectl get nodes' on the control-plane to see this node join the cluster.")


def reset():
    if "--force" not in ARGS and "-f" not in ARGS:
        fail("error: reset needs confirmation: run with --force")
    print("[preflight] Running pre-flight checks")
    print("[reset] Stopping the kubelet service")
    subprocess.run(["systemctl", "stop", "kubelet"], check=True)
    print("[reset] Unmounting mounted directories in \"/var/lib/kubelet\"")
    shutil.rmtree("/var/lib/kubelet", ignore_errors=True)
    for path in ("/etc/kubernetes/kubelet.conf", "/etc/kubernetes/bootstrap-kubelet.conf"):
        if os.path.exists(path):
            os.remove(path)
    print("[reset] Deleting contents of directories: [/etc/kubernetes/manifests /var/lib/kubelet]")
    print("[reset] Deleting files: [/etc/kubernetes/admin.conf /etc/kubernetes/kubelet.conf]")
    print("\nThe reset process does not clean CNI configuration. To do so, you must remove /etc/cni/net.d")


def kubeadm():
    if ARGS[:2] == ["version", "-o"]:
        print(VERSION)
    elif ARGS[:2] == ["token", "create"]:
        token_create()
    elif ARGS[:1] == ["join"]:
        join()
    elif ARGS[:1] == ["reset"]:
        reset()
    else:
        fail(f'unknown command "{" ".join(ARGS)}" for "kubeadm"')


if NAME == "systemctl":
    systemctl()
elif NAME == "kubectl":
    kubectl()
elif NAME == "kubeadm":
    kubeadm()
elif NAME == "kubelet" and ARGS == ["--version"]:
    print(f"Kubernetes {VERSION}")
else:
    fail(f"{NAME} stand-in: unexpected arguments {ARGS}")
'''


@dataclass(frozen=True)
class FakeCluster:
    """Where the stand-ins keep the cluster's state and the calls they saw (shared by all lab hosts)."""

    state: Path
    calls: Path
    version: str
    endpoint: str

    @classmethod
    def create(cls, directory: Path, *, version: str, endpoint: str) -> FakeCluster:
        directory.mkdir(parents=True, exist_ok=True)
        made = cls(directory / "cluster.json", directory / "calls.jsonl", version, endpoint)
        made.state.write_text(json.dumps({"tokens": {}, "nodes": {}}))
        made.calls.write_text("")
        return made

    def script(self) -> str:
        text = STANDIN.replace("__PYTHON__", sys.executable)  # the test's Python: it has PyYAML
        values = {
            "__CLUSTER__": str(self.state),
            "__CALLS__": str(self.calls),
            "__VERSION__": self.version,
            "__ENDPOINT__": self.endpoint,
            "__CA_HASH__": CA_HASH,
        }
        for placeholder, value in values.items():
            text = text.replace(placeholder, repr(value))
        return text

    def install(self, bin_dir: Path, *names: str) -> None:
        """Put the stand-in at ``bin_dir/NAME`` for each name (a host's private /usr/local/bin)."""
        bin_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            path = bin_dir / name
            path.write_text(self.script())
            path.chmod(0o755)

    def nodes(self) -> dict[str, dict]:
        return json.loads(self.state.read_text())["nodes"]

    def tokens(self) -> dict[str, float]:
        return json.loads(self.state.read_text())["tokens"]

    def calls_by(self, host: str) -> list[list[str]]:
        """The argv of every call made on ``host`` (its hostname), in order."""
        entries = [json.loads(line) for line in self.calls.read_text().splitlines()]
        return [entry["argv"] for entry in entries if entry["host"] == host]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o755, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def release_mirror(root: Path, fake: FakeCluster, *, arch: str = "arm64") -> dict[str, str]:
    """Lay out the mirror under ``root`` (``dl/`` like dl.k8s.io/release, ``gh/`` like github.com).

    Returns the role variables that point at it (relative to the server's base URL: prefix them).
    """
    stub = b"#!/bin/sh\necho stand-in\n"
    version = fake.version
    kube_dir = root / "dl" / version / "bin" / "linux" / arch
    kube_dir.mkdir(parents=True)
    for name in ("kubeadm", "kubelet"):
        data = fake.script().encode()
        (kube_dir / name).write_bytes(data)
        (kube_dir / f"{name}.sha256").write_text(_sha256(data))  # dl.k8s.io: the bare digest

    def publish(path: str, data: bytes, checksum_file: str, listed_name: str) -> None:
        target = root / "gh" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        (target.parent / checksum_file).write_text(f"{_sha256(data)}  {listed_name}\n")

    containerd = _tarball({f"bin/{n}": stub for n in ("containerd", "containerd-shim-runc-v2", "ctr")})
    name = f"containerd-1.7.22-linux-{arch}.tar.gz"
    publish(f"containerd/containerd/releases/download/v1.7.22/{name}", containerd, f"{name}.sha256sum", name)
    publish(
        f"opencontainers/runc/releases/download/v1.1.14/runc.{arch}", stub, "runc.sha256sum", f"runc.{arch}"
    )
    name = f"cni-plugins-linux-{arch}-v1.5.1.tgz"
    cni = _tarball({f"./{n}": stub for n in ("bridge", "host-local", "loopback", "portmap")})
    publish(f"containernetworking/plugins/releases/download/v1.5.1/{name}", cni, f"{name}.sha256", name)
    minor = ".".join(version.split(".")[:2])
    name = f"crictl-{minor}.0-linux-{arch}.tar.gz"
    publish(
        f"kubernetes-sigs/cri-tools/releases/download/{minor}.0/{name}",
        _tarball({"crictl": stub}),
        f"{name}.sha256",
        name,
    )
    return {"edge_node_kube_base_url": "/dl", "edge_node_github_url": "/gh"}
