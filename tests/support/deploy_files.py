"""Reading the deploy files (deploy/) as the tests check them: Containerfile instructions,
Kubernetes documents and their pods, the compose file, and the `sangsaeng` command lines
all of them run."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose.yaml"
CONTAINERFILES = sorted(DEPLOY.glob("*.Containerfile"))
OUR_IMAGES = ("sangsaeng-coordinator", "sangsaeng-partner")
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}


def release() -> str:
    """The version in pyproject.toml: the tag our images are built and deployed with."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


# --- Containerfiles ---------------------------------------------------------------------

@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper-case: FROM, RUN, USER, ...
    arguments: str


def instructions(path: Path) -> list[Instruction]:
    """Every instruction, continuation lines joined and comments dropped."""
    found, pending = [], ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        if pending.strip():
            keyword, _, arguments = pending.strip().partition(" ")
            found.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    return found


def final_stage(path: Path) -> list[Instruction]:
    """The instructions of the image's last stage (after its last FROM)."""
    found = instructions(path)
    last_from = max(i for i, ins in enumerate(found) if ins.keyword == "FROM")
    return found[last_from + 1:]


def exec_form(arguments: str) -> list[str]:
    """A JSON array argument (exec form), as ENTRYPOINT, CMD and HEALTHCHECK CMD take it."""
    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), arguments
    return value


def healthcheck_command(path: Path) -> list[str]:
    [check] = [i.arguments for i in final_stage(path) if i.keyword == "HEALTHCHECK"]
    return exec_form(check[check.index("CMD ") + len("CMD "):])


def entrypoint(path: Path) -> list[str]:
    [value] = [exec_form(i.arguments) for i in final_stage(path) if i.keyword == "ENTRYPOINT"]
    return value


def default_command(path: Path) -> list[str]:
    [value] = [exec_form(i.arguments) for i in final_stage(path) if i.keyword == "CMD"]
    return value


# --- Kubernetes ----------------------------------------------------------------------------

def manifest_files() -> list[Path]:
    """The Kubernetes resources' files (the kustomization itself is Kustomize's, not the
    API's)."""
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def kustomization() -> dict[str, Any]:
    return dict(yaml.safe_load((K8S / "kustomization.yaml").read_text()))


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def manifests() -> list[dict[str, Any]]:
    return [d for path in manifest_files() for d in documents(path.read_text())]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return dict(workload["spec"]["template"]["spec"])


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels, matchExpressions) matches `labels`."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = (expression["key"], expression["operator"],
                                 expression.get("values", []))
        matched = {"In": key in labels and labels[key] in values,
                   "NotIn": labels.get(key) not in values,
                   "Exists": key in labels, "DoesNotExist": key not in labels}[operator]
        if not matched:
            return False
    return True


# --- compose -------------------------------------------------------------------------------

def compose() -> dict[str, Any]:
    """The compose file as Compose sees it (YAML anchors and merge keys resolved)."""
    return dict(yaml.safe_load(COMPOSE.read_text()))


# --- the commands they run -----------------------------------------------------------------

def image_name(image: str) -> str:
    """'localhost/sangsaeng-partner:0.1.0' -> 'sangsaeng-partner'."""
    return image.rsplit("/", 1)[-1].split(":")[0]


def image_tag(image: str) -> str | None:
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def containerfile_of(image: str) -> Path:
    return DEPLOY / f"{image_name(image).removeprefix('sangsaeng-')}.Containerfile"


def command_lines() -> Iterator[tuple[str, list[str]]]:
    """(where, argv) of every command the deploy files have a container run: the images'
    default commands and health checks, compose services' commands and health checks,
    Kubernetes containers' commands and probes. A command without an executable of its own
    runs as arguments to the image's ENTRYPOINT."""
    for path in CONTAINERFILES:
        yield path.name, [*entrypoint(path), *default_command(path)]
        yield f"{path.name} HEALTHCHECK", healthcheck_command(path)
    for name, service in compose()["services"].items():
        if image_name(service["image"]) in OUR_IMAGES:
            if "command" in service:
                yield (f"compose {name}",
                       [*entrypoint(containerfile_of(service["image"])), *service["command"]])
            test = service.get("healthcheck", {}).get("test")
            if test:
                assert test[0] == "CMD", f"compose {name}: exec-form health checks only"
                yield f"compose {name} healthcheck", test[1:]
    for doc in manifests():
        if doc["kind"] not in WORKLOADS:
            continue
        for container in containers(pod_spec(doc)):
            where = f"{doc['kind']} {doc['metadata']['name']} {container['name']}"
            if image_name(container["image"]) in OUR_IMAGES:
                argv = container.get("command") or entrypoint(
                    containerfile_of(container["image"]))
                yield where, [*argv, *container.get("args", [])]
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                if "exec" in container.get(probe, {}):
                    yield f"{where} {probe}", container[probe]["exec"]["command"]


def option_value(argv: list[str], option: str) -> str:
    """The value given to `option` in argv (`--opt VALUE` or `--opt=VALUE`)."""
    for i, word in enumerate(argv):
        if word == option:
            return argv[i + 1]
        if word.startswith(option + "="):
            return word.split("=", 1)[1]
    raise KeyError(f"{option} not in {argv}")


def python_snippets() -> Iterator[tuple[str, str]]:
    """(where, code) of every `python3 -c CODE` among the command lines."""
    for where, argv in command_lines():
        if Path(argv[0]).name.startswith("python") and argv[1:2] == ["-c"]:
            yield where, argv[2]


def port_of(url: str) -> int:
    match = re.fullmatch(r"https?://[^/:]+:(\d+)/?.*", url)
    assert match, url
    return int(match[1])
