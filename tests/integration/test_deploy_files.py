"""The deploy files, checked offline as CI can: the Kubernetes manifests against the API's
own schemas (`kubernetes-validate --strict`), raw and as `kubectl kustomize` renders them;
the compose file by a strict Compose Specification parser; and what every file must keep
whatever a schema allows: non-root, read-only root filesystem, no capabilities, health
checks and probes, our images pinned to this release, secrets as files, and only
`sangsaeng` commands and options the CLI has."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import typer
from compose_spec import PyCompose

from sangsaeng.cli import app

from ..support import deploy_files as files

K8S_VERSION = "1.33.0"
VALIDATE = Path(sys.executable).parent / "kubernetes-validate"
API_PORT, FLEET_PORT = 8000, 9092
STORE_PORT, DNS_PORT = 5432, 53


def kubernetes_validate(path: Path) -> str:
    """Run the validator; every resource must pass against a schema it has (a resource it
    has no schema for, e.g. a misspelt apiVersion, is only a warning to it)."""
    result = subprocess.run([str(VALIDATE), "--strict", "-k", K8S_VERSION, str(path)],
                            capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert not re.search(r"^(WARN|ERROR)", output, re.M), output
    return output


# --- Kubernetes: schemas ----------------------------------------------------------------

@pytest.mark.parametrize("path", files.manifest_files(), ids=lambda p: p.name)
def test_each_manifest_passes_strict_validation(path: Path) -> None:
    output = kubernetes_validate(path)
    for doc in files.documents(path.read_text()):
        assert f"resource {doc['kind'].lower()}/{doc['metadata']['name']} " in output


def test_the_kustomization_lists_every_manifest() -> None:
    listed = files.kustomization()["resources"]
    assert sorted(listed) == [p.name for p in files.manifest_files()]


def test_the_kustomization_renders_resources_that_pass_strict_validation(
        tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        if os.environ.get("CI"):
            pytest.fail("kubectl (with its built-in Kustomize) is missing from CI's machine")
        pytest.skip("kubectl is not installed: the raw manifests are still validated")
    result = subprocess.run([kubectl, "kustomize", str(files.K8S)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rendered = files.documents(result.stdout)
    raw = files.manifests()
    assert sorted((d["kind"], d["metadata"]["name"]) for d in rendered) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in raw)
    namespace = files.kustomization()["namespace"]
    for doc in rendered:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == namespace, doc["metadata"]
    (tmp_path / "rendered.yaml").write_text(result.stdout)
    kubernetes_validate(tmp_path / "rendered.yaml")


# --- Kubernetes: what a schema does not say -----------------------------------------------

def workloads() -> list[dict[str, Any]]:
    found = [d for d in files.manifests() if d["kind"] in files.WORKLOADS]
    assert {d["kind"] for d in found} == {"Deployment", "Job"}
    return found


@pytest.mark.parametrize("workload", workloads(), ids=lambda d: d["metadata"]["name"])
def test_pods_run_non_root_read_only_with_no_capabilities(workload: dict[str, Any]) -> None:
    pod = files.pod_spec(workload)
    context = pod["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] != 0 and context["runAsGroup"] != 0
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for container in files.containers(pod):
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, container["name"]
        assert security["allowPrivilegeEscalation"] is False, container["name"]
        assert security["capabilities"] == {"drop": ["ALL"]}, container["name"]
        assert not security.get("privileged"), container["name"]
        mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
        assert "/tmp" in mounts, f"{container['name']}: a writable /tmp on a read-only root"


def test_the_coordinator_is_one_pod_with_probes_and_its_state_on_a_claim() -> None:
    [deployment] = [d for d in workloads() if d["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = files.pod_spec(deployment)
    [container] = pod["containers"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        # exec: `podman kube play` turns httpGet into a curl the image does not have
        assert set(container[probe]) & {"exec", "httpGet", "tcpSocket", "grpc"} == {"exec"}
    # the readiness command asks the API the server serves
    argv = container["args"]
    ready = container["readinessProbe"]["exec"]["command"]
    assert files.port_of(files.option_value(ready, "--api-url")) == int(
        files.option_value(argv, "--api-port"))
    assert {p["containerPort"] for p in container["ports"]} == {
        int(files.option_value(argv, "--api-port")),
        int(files.option_value(argv, "--fleet-port"))}
    # the workdir (superlink.db, internal CA) is the claim, which is ReadWriteOnce
    volumes = {v["name"]: v for v in pod["volumes"]}
    [state] = [m for m in container["volumeMounts"]
               if m["mountPath"] == files.option_value(argv, "--workdir")]
    claim = volumes[state["name"]]["persistentVolumeClaim"]["claimName"]
    [pvc] = [d for d in files.manifests() if d["kind"] == "PersistentVolumeClaim"
             and d["metadata"]["name"] == claim]
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_the_service_exposes_the_api_and_fleet_ports_of_the_coordinator() -> None:
    [service] = [d for d in files.manifests() if d["kind"] == "Service"]
    [deployment] = [d for d in workloads() if d["kind"] == "Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert files.selects({"matchLabels": service["spec"]["selector"]}, labels)
    named = {p["name"]: p["containerPort"]
             for p in files.pod_spec(deployment)["containers"][0]["ports"]}
    assert {named[p["targetPort"]] for p in service["spec"]["ports"]} == {API_PORT, FLEET_PORT}


def allowed(labels: dict[str, str], direction: str) -> tuple[set[tuple[str, int]], bool]:
    """The (protocol, port)s the NetworkPolicies let a pod with `labels` use in `direction`
    ("ingress" or "egress"), and whether some allowed rule has no peer restriction."""
    ports: set[tuple[str, int]] = set()
    open_to_all = False
    kind = direction.capitalize()
    for policy in (d for d in files.manifests() if d["kind"] == "NetworkPolicy"):
        spec = policy["spec"]
        if kind not in spec["policyTypes"] or not files.selects(spec["podSelector"], labels):
            continue
        for rule in spec.get(direction, []):
            assert rule.get("ports"), f"{policy['metadata']['name']}: a rule for every port"
            ports |= {(p.get("protocol", "TCP"), p["port"]) for p in rule["ports"]}
            open_to_all |= not rule.get("to" if direction == "egress" else "from")
    return ports, open_to_all


def test_network_policies_let_in_only_api_and_fleet_and_out_only_store_and_dns() -> None:
    dns = {("UDP", DNS_PORT), ("TCP", DNS_PORT)}
    for workload in workloads():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        ingress, _ = allowed(labels, "ingress")
        egress, egress_anywhere = allowed(labels, "egress")
        coordinator = workload["kind"] == "Deployment"
        assert ingress == ({("TCP", API_PORT), ("TCP", FLEET_PORT)} if coordinator else set())
        assert egress == {("TCP", STORE_PORT)} | dns
        assert not egress_anywhere, "every egress rule names its peers"


def documented_secrets() -> dict[str, set[str]]:
    """The secrets deploy/README.md tells the operator to create: name -> file names."""
    readme = (files.DEPLOY / "README.md").read_text().replace("\\\n", " ")
    made = re.findall(r"kubectl (?:-n \S+ )?create secret generic (\S+)((?: --from-file=\S+)+)",
                      re.sub(r" +", " ", readme))
    return {name: {Path(f).name for f in re.findall(r"--from-file=(\S+)", sources)}
            for name, sources in made}


def test_secrets_are_referenced_never_committed_and_their_creation_is_documented() -> None:
    assert not [d for d in files.manifests() if d["kind"] == "Secret"]
    documented = documented_secrets()
    for workload in workloads():
        pod = files.pod_spec(workload)
        names = set()
        for volume in pod["volumes"]:
            if "secret" in volume:
                names.add(volume["secret"]["secretName"])
            for source in volume.get("projected", {}).get("sources", []):
                if "secret" in source:
                    names.add(source["secret"]["name"])
        assert names and names <= set(documented), names - set(documented)
        # every secret file a container names is in a secret the pod mounts
        mounted = set().union(*(documented[n] for n in names))
        used = set(re.findall(r"/run/secrets/([\w.-]+)", json.dumps(pod["containers"])))
        assert used and used <= mounted, used - mounted


# --- compose ----------------------------------------------------------------------------------

def test_the_compose_file_follows_the_compose_specification() -> None:
    # a strict parser: an unknown key, a wrong type or an unknown depends_on condition fails
    PyCompose.from_json(json.dumps(files.compose()))


def services() -> dict[str, dict[str, Any]]:
    return dict(files.compose()["services"])


@pytest.mark.parametrize("name", services())
def test_every_compose_service_is_hardened_and_checked(name: str) -> None:
    service = services()[name]
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert not service.get("privileged") and not service.get("cap_add")
    assert str(service["user"]).split(":")[0] not in ("", "0", "root")
    assert "/tmp" in [t.split(":")[0] for t in service["tmpfs"]]
    check = service["healthcheck"]
    if check.get("disable"):  # only a one-shot, which compose must not restart
        assert service["restart"] == "no"
    else:
        assert check["test"][0] == "CMD" and check["test"][1:]


def test_compose_secrets_are_files_and_no_secret_is_a_value() -> None:
    config = files.compose()
    declared = config["secrets"]
    for name, secret in declared.items():
        assert set(secret) == {"file"}, f"{name}: from a file only"
        assert secret["file"].startswith("./secrets/"), name
    used = set()
    for name, service in services().items():
        used |= {s if isinstance(s, str) else s["source"] for s in service.get("secrets", [])}
        for key, value in service.get("environment", {}).items():
            if re.search(r"PASSWORD|SECRET|TOKEN|KEY|URL", key):
                assert key.endswith("_FILE"), f"{name}: {key} holds a value, not a file"
                assert str(value).startswith("/run/secrets/"), f"{name}: {key}"
            assert not re.search(r"://[^/@\s]*:[^/@\s]*@", str(value)), f"{name}: {key}"
    assert used == set(declared)


def test_the_coordinator_starts_after_the_store_and_its_migrations() -> None:
    assert services()["coordinator"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"}}
    assert services()["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    partners = [n for n, s in services().items()
                if files.image_name(s["image"]) == "sangsaeng-partner"]
    assert partners
    for name in partners:
        assert services()[name]["depends_on"] == {"coordinator": {"condition":
                                                                  "service_healthy"}}
        assert "store" not in services()[name]["networks"], "partners never reach the store"
    assert files.compose()["networks"]["store"]["internal"] is True


# --- images ----------------------------------------------------------------------------------

@pytest.mark.parametrize("path", files.CONTAINERFILES, ids=lambda p: p.name)
def test_images_run_as_a_fixed_user_with_a_health_check(path: Path) -> None:
    stage = files.final_stage(path)
    [user] = [i.arguments for i in stage if i.keyword == "USER"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0, user
    assert files.entrypoint(path) == ["sangsaeng"]
    assert files.healthcheck_command(path)
    # built with no network: everything comes from the wheels in the build context
    for run in (i.arguments for i in files.instructions(path) if i.keyword == "RUN"):
        if "pip install" in run:
            assert "--no-index" in run, run
    [base] = [i.arguments for i in files.instructions(path) if i.keyword == "ARG"
              and i.arguments.startswith("BASE=")]
    assert base == "BASE=python:3.11-slim"


def test_both_images_are_named_with_this_release_everywhere() -> None:
    images = [s["image"] for s in services().values()]
    images += [c["image"] for w in workloads() for c in files.containers(files.pod_spec(w))]
    ours = [i for i in images if files.image_name(i) in files.OUR_IMAGES]
    assert {files.image_name(i) for i in ours} == set(files.OUR_IMAGES)
    for image in ours:
        assert files.image_tag(image) == files.release(), image
    for image in images:
        assert files.image_tag(image) not in (None, "latest"), image
    assert sorted(files.containerfile_of(i) for i in set(ours)) == files.CONTAINERFILES


# --- the commands all of them run -------------------------------------------------------

def cli_mistakes(argv: list[str]) -> list[str]:
    """What in a `sangsaeng ...` command line the CLI does not have: a command, or an
    option of the command it reaches."""
    command: click.Command = typer.main.get_command(app)
    words = argv[1:]
    while isinstance(command, click.Group) and words and not words[0].startswith("-"):
        sub = command.get_command(click.Context(command), words[0])
        if sub is None:
            return [f"no command '{words[0]}' in '{command.name}'"]
        command, words = sub, words[1:]
    if isinstance(command, click.Group):
        return [f"'{' '.join(argv)}' names a group of commands, not a command"]
    options = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
    return [f"'{command.name}' has no option {w.split('=')[0]}" for w in words
            if w.startswith("--") and w.split("=")[0] not in options]


def test_every_sangsaeng_command_the_deploy_files_run_exists() -> None:
    lines = [(where, argv) for where, argv in files.command_lines()
             if argv[0] == "sangsaeng"]
    assert len(lines) >= 10
    mistakes = [f"{where}: {m}" for where, argv in lines for m in cli_mistakes(argv)]
    assert not mistakes, "\n".join(mistakes)


def test_every_python_snippet_they_run_compiles() -> None:
    snippets = list(files.python_snippets())
    assert snippets
    for where, code in snippets:
        compile(code, where, "exec")
