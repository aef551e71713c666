"""Static checks of deploy/: the files are parsed, never run (no container engine in CI).

What they pin: the services and roles exist, commands parse with the real CLI, every setting
name is one config/settings.py reads, beat is single, Redis is durable, Kubernetes containers
have probes and resources, the image is pinned and non-root, KEDA watches the results queue.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import shlex
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from batchline.cli import COMMANDS
from batchline.workers.app import QUEUES

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s" / "base"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
REDIS_CONF = DEPLOY / "redis.conf"

ENV_NAME = re.compile(r"\b(?:BATCHLINE|ANTHROPIC)_[A-Z0-9_]+\b")
#: Read by the SDKs / tools themselves, not by batchline's settings.
FOREIGN_ENV_PREFIXES = ("AWS_", "FLOWER_", "MINIO_")
#: Other names deploy/ may set: REDIS_ADDRESS is read by the KEDA redis scaler only; REDIS_PASSWORD
#: by the Redis container's command line, REDISCLI_AUTH by redis-cli in its probes.
FOREIGN_ENV_NAMES = {"REDIS_ADDRESS", "REDIS_PASSWORD", "REDISCLI_AUTH"}
#: Settings that must never appear in a deployment.
TEST_ONLY_SETTINGS = {"BATCHLINE_TEST_CRASH_AT"}
WORKER_SERVICES = ("aggregator", "poller", "results", "delivery")


# --- helpers -----------------------------------------------------------------------------------


def settings_env_names() -> set[str]:
    """Every environment name config/settings.py reads: quoted BATCHLINE_* literals + the SDK's."""
    source = (ROOT / "config" / "settings.py").read_text()
    names = set(re.findall(r'"(BATCHLINE_[A-Z0-9_]+)"', source))
    assert len(names) > 10, "settings.py no longer names its variables as string literals?"
    return names | {"ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"}


def unknown_env_names(text: str, known: set[str]) -> set[str]:
    """BATCHLINE_* / ANTHROPIC_* names in `text` that the settings do not read."""
    return set(ENV_NAME.findall(text)) - known


def deploy_text_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file())


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def as_argv(command: str | list[str] | None) -> list[str]:
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def uses_batchline_entrypoint(service: dict[str, Any]) -> bool:
    return "build" in service and "entrypoint" not in service


def parse_cli(argv: list[str]) -> tuple[str, argparse.Namespace]:
    """Parse `batchline ARGV` with the real sub-command's own parser (as batchline.cli.main does)."""
    assert argv and argv[0] in COMMANDS, f"not a batchline command: {argv}"
    module = importlib.import_module(COMMANDS[argv[0]][0])
    parser = argparse.ArgumentParser(prog=f"batchline {argv[0]}", exit_on_error=False)
    module.add_arguments(parser)
    try:
        return argv[0], parser.parse_args(argv[1:])
    except SystemExit as exc:  # argparse still exits on some errors (e.g. invalid choice)
        raise AssertionError(f"batchline {shlex.join(argv)} does not parse") from exc


def role_of(argv: list[str]) -> str:
    command, args = parse_cli(argv)
    assert command == "worker", argv
    return str(args.role)


def k8s_docs() -> list[tuple[Path, dict[str, Any]]]:
    docs: list[tuple[Path, dict[str, Any]]] = []
    for path in sorted(K8S.glob("*.yaml")):
        docs.extend((path, d) for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def k8s_kind(kind: str) -> list[dict[str, Any]]:
    return [d for _, d in k8s_docs() if d.get("kind") == kind]


def deployment(name: str) -> dict[str, Any]:
    found = [d for d in k8s_kind("Deployment") if d["metadata"]["name"] == name]
    assert len(found) == 1, f"{name}: {len(found)} Deployments"
    return found[0]


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    return list(workload["spec"]["template"]["spec"]["containers"])


def container_env_names(container: dict[str, Any]) -> set[str]:
    return {e["name"] for e in container.get("env", [])}


def config_map_data(name: str) -> dict[str, str]:
    found = [d for d in k8s_kind("ConfigMap") if d["metadata"]["name"] == name]
    assert len(found) == 1, name
    return dict(found[0]["data"])


def redis_conf(text: str) -> dict[str, str]:
    """Directive -> value (last one wins, as in Redis)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            out[key.lower()] = value.strip()
    return out


def redis_server_argv(argv: list[str]) -> list[str]:
    """The redis-server command line, also when a shell starts it (`sh -c 'exec redis-server ...'`)."""
    if argv[:2] == ["sh", "-c"]:
        argv = shlex.split(" ".join(argv[2:]))
    if argv and argv[0] == "exec":
        argv = argv[1:]
    assert argv and argv[0] == "redis-server", argv
    return argv


def env_keys(mapping_or_list: Any) -> Iterator[str]:
    if isinstance(mapping_or_list, dict):
        yield from mapping_or_list
    elif isinstance(mapping_or_list, list):
        for item in mapping_or_list:
            yield str(item).split("=", 1)[0]


def check_env_keys(names: Iterable[str], known: set[str]) -> set[str]:
    """Names that are neither settings nor a known foreign tool's variables."""
    return {
        n for n in names if n not in known and n not in FOREIGN_ENV_NAMES and not n.startswith(FOREIGN_ENV_PREFIXES)
    }


# --- environment names -----------------------------------------------------------------------------


def test_env_name_check_catches_a_misspelling() -> None:
    known = settings_env_names()
    assert "BATCHLINE_REDIS_URL" in known and "BATCHLINE_S3_ENDPOINT_URL" in known
    assert unknown_env_names("BATCHLINE_REDIS_URI: redis://x", known) == {"BATCHLINE_REDIS_URI"}
    assert unknown_env_names("ANTHROPIC_KEY=x", known) == {"ANTHROPIC_KEY"}
    assert check_env_keys(["REDIS_URL", "AWS_REGION", "FLOWER_X"], known) == {"REDIS_URL"}


@pytest.mark.parametrize("path", deploy_text_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_setting_name_in_deploy_is_read_by_settings(path: Path) -> None:
    text = path.read_text()
    known = settings_env_names()
    assert unknown_env_names(text, known) == set()
    assert not TEST_ONLY_SETTINGS & set(ENV_NAME.findall(text)), "test-only hook in a deployment"


def test_every_env_key_set_in_compose_and_k8s_is_known() -> None:
    known = settings_env_names()
    names: list[str] = []
    for service in services().values():
        names.extend(env_keys(service.get("environment")))
    names.extend(env_keys(compose()["x-batchline-env"]))
    for _, doc in k8s_docs():
        if doc.get("kind") == "ConfigMap" and doc["metadata"]["name"] == "batchline-config":
            names.extend(doc["data"])
        if doc.get("kind") == "Secret":
            names.extend(doc.get("stringData", {}))
        if doc.get("kind") in ("Deployment", "StatefulSet"):
            for c in containers(doc):
                names.extend(container_env_names(c))
    assert names
    assert check_env_keys(names, known) == set()


def test_no_real_looking_secrets() -> None:
    for path in deploy_text_files():
        assert not re.search(r"sk-ant-[A-Za-z0-9_-]{8,}", path.read_text()), path
        assert not re.search(r"\bAKIA[0-9A-Z]{16}\b", path.read_text()), path


# --- docker compose ---------------------------------------------------------------------------------


def test_compose_has_every_service() -> None:
    assert {"redis", "aggregator", "poller", "results", "beat", "flower", "s3", "s3-init", "emulator"} <= set(
        services()
    )


def test_compose_shared_env_connects_the_services() -> None:
    env = compose()["x-batchline-env"]
    assert env["BATCHLINE_REDIS_URL"] == "redis://:${REDIS_PASSWORD:?set REDIS_PASSWORD}@redis:6379/0"
    assert env["ANTHROPIC_BASE_URL"].endswith("http://emulator:8080}")
    assert env["ANTHROPIC_API_KEY"].startswith("${ANTHROPIC_API_KEY:-")  # default for the emulator
    assert env["BATCHLINE_S3_ENDPOINT_URL"].endswith("http://s3:9000}")
    for name in ("BATCHLINE_S3_BUCKET", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        assert name in env
    for name in (*WORKER_SERVICES, "beat", "flower", "metrics"):
        assert env.items() <= services()[name]["environment"].items(), name


def test_compose_worker_commands_use_real_roles() -> None:
    roles = {}
    for name, service in services().items():
        argv = as_argv(service.get("command"))
        if uses_batchline_entrypoint(service) and argv and argv[0] == "worker":
            role = role_of(argv)
            assert role in QUEUES or role == "all"
            roles[name] = role
    assert {roles.get(s) for s in WORKER_SERVICES} == set(WORKER_SERVICES)
    assert all(roles[s] == s for s in WORKER_SERVICES)


def test_compose_batchline_commands_parse() -> None:
    for name, service in services().items():
        if uses_batchline_entrypoint(service):
            parse_cli(as_argv(service.get("command")) or ["worker", "--role", "all"])
        assert name


def test_compose_has_exactly_one_beat() -> None:
    beats = [
        (name, s)
        for name, s in services().items()
        if uses_batchline_entrypoint(s) and as_argv(s.get("command"))[:1] == ["beat"]
    ]
    assert len(beats) == 1
    _, beat = beats[0]
    assert int(beat.get("deploy", {}).get("replicas", 1)) <= 1
    assert int(beat.get("scale", 1)) <= 1


def test_compose_results_has_two_replicas() -> None:
    assert services()["results"]["deploy"]["replicas"] == 2


def test_compose_redis_is_durable_and_healthchecked() -> None:
    redis = services()["redis"]
    assert redis["image"].startswith("redis:7")
    assert "redis-cli" in as_argv(redis["healthcheck"]["test"])
    assert "ping" in [a.lower() for a in as_argv(redis["healthcheck"]["test"])]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in redis["volumes"]}
    conf_in_container = redis_server_argv(as_argv(redis["entrypoint"]) + as_argv(redis["command"]))[1]
    assert (DEPLOY / mounted[conf_in_container]).resolve() == REDIS_CONF
    assert "/data" in mounted, "Redis data must live on a volume"
    assert mounted["/data"] in compose()["volumes"]


def test_compose_services_wait_for_a_healthy_redis() -> None:
    for name in (*WORKER_SERVICES, "beat", "flower"):
        assert services()[name]["depends_on"]["redis"]["condition"] == "service_healthy", name


def test_compose_flower_and_emulator() -> None:
    flower = services()["flower"]
    assert uses_batchline_entrypoint(flower), "Flower runs through `batchline flower`, which requires auth"
    command, args = parse_cli(as_argv(flower["command"]))
    assert (command, args.port, args.no_auth) == ("flower", 5555, False)
    assert any(p.startswith("127.0.0.1:") and "5555" in p for p in flower["ports"])
    # user:password, with no default password to fall back on
    assert ":${FLOWER_PASSWORD:?" in flower["environment"]["FLOWER_BASIC_AUTH"]
    command, args = parse_cli(as_argv(services()["emulator"]["command"]))
    assert (command, args.host, args.port) == ("emulator", "0.0.0.0", 8080)


def test_compose_s3_bucket_is_created() -> None:
    init = services()["s3-init"]
    script = " ".join(as_argv(init["command"]))
    assert "mb" in script and "BATCHLINE_S3_BUCKET" in script
    assert init["depends_on"]["s3"]["condition"] == "service_healthy"
    assert services()["aggregator"]["depends_on"]["s3-init"]["condition"] == "service_completed_successfully"


# --- redis.conf -------------------------------------------------------------------------------------


def test_redis_conf_is_durable_and_never_evicts() -> None:
    conf = redis_conf(REDIS_CONF.read_text())
    assert conf["appendonly"] == "yes"
    assert conf["appendfsync"] in ("everysec", "always")
    assert conf["maxmemory-policy"] == "noeviction"
    assert conf.get("save", "") != ""
    assert conf["dir"] == "/data"


def test_k8s_redis_conf_is_a_copy_of_deploy_redis_conf() -> None:
    assert (K8S / "redis.conf").read_text() == REDIS_CONF.read_text()


# --- Dockerfile -------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def test_dockerfile_is_multi_stage_slim_and_non_root() -> None:
    ins = dockerfile_instructions()
    froms = [rest for op, rest in ins if op == "FROM"]
    assert len(froms) >= 2
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in [f"ARG {rest}" for op, rest in ins if op == "ARG"]
    users = [rest for op, rest in ins if op == "USER"]
    assert users, "no USER"
    last_user = users[-1].split(":")[0]
    assert last_user not in ("root", "0")
    # The last USER must come after the last FROM (it applies to the final stage).
    assert max(i for i, (op, _) in enumerate(ins) if op == "USER") > max(
        i for i, (op, _) in enumerate(ins) if op == "FROM"
    )


def test_dockerfile_installs_pinned_dependencies_then_project_without_deps() -> None:
    runs = [rest for op, rest in dockerfile_instructions() if op == "RUN"]
    assert any(re.search(r"pip install .*-r \S*requirements\.lock", r) for r in runs)
    assert any(re.search(r"pip install .*--no-deps", r) for r in runs)
    copies = [rest for op, rest in dockerfile_instructions() if op == "COPY"]
    assert any(c.startswith("requirements.lock") for c in copies)


def test_dockerfile_entrypoint_cmd_healthcheck() -> None:
    ins = dict(dockerfile_instructions())
    assert ins["ENTRYPOINT"] == '["batchline"]'
    parse_cli(yaml.safe_load(ins["CMD"]))
    assert yaml.safe_load(ins["CMD"]) == ["worker", "--role", "all"]
    assert "BATCHLINE_REDIS_URL" in ins["HEALTHCHECK"]


def test_requirements_lock_has_what_the_image_runs() -> None:
    lock = ROOT / "requirements.lock"
    if not lock.exists():
        pytest.skip("requirements.lock not generated yet")
    names = {
        re.split(r"[=<>!~\[; ]", line.strip(), maxsplit=1)[0].lower()
        for line in lock.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "-"))
    }
    for needed in ("celery", "redis", "boto3", "anthropic", "flower", "uvicorn", "starlette", "structlog"):
        assert needed in names, f"{needed} missing from requirements.lock"


# --- Kubernetes -------------------------------------------------------------------------------------


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def test_kustomization_lists_only_existing_files_and_all_manifests() -> None:
    k = kustomization()
    listed = list(k["resources"])
    for gen in k.get("configMapGenerator", []) + k.get("secretGenerator", []):
        listed.extend(f.split("=", 1)[-1] for f in gen.get("files", []))
    for item in listed:
        assert (K8S / item).is_file(), f"kustomization lists a missing file: {item}"
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert manifests <= set(k["resources"]), "a manifest is not listed"


def test_every_role_has_a_deployment_with_a_real_role() -> None:
    for role in WORKER_SERVICES:
        (c,) = containers(deployment(f"batchline-{role}"))
        assert role_of(as_argv(c["args"])) == role


def test_k8s_batchline_commands_parse() -> None:
    for d in k8s_kind("Deployment"):
        for c in containers(d):
            if c["image"] == "batchline" and "command" not in c:
                parse_cli(as_argv(c["args"]))


def test_every_container_has_probes_resources_and_runs_non_root() -> None:
    workloads = k8s_kind("Deployment") + k8s_kind("StatefulSet")
    assert len(workloads) >= 6
    for w in workloads:
        pod = w["spec"]["template"]["spec"]
        for c in containers(w):
            where = f"{w['metadata']['name']}/{c['name']}"
            for probe in ("livenessProbe", "readinessProbe"):
                spec = c.get(probe, {})
                assert spec.get("exec", {}).get("command") or spec.get("httpGet", {}).get("path"), f"{where}: {probe}"
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), f"{where}: resources.{kind}"
            pod_default = pod.get("securityContext", {}).get("runAsNonRoot")
            non_root = c.get("securityContext", {}).get("runAsNonRoot", pod_default)
            assert non_root is True, where


def test_beat_is_single_and_recreated() -> None:
    beats = [d for d in k8s_kind("Deployment") if any(as_argv(c.get("args"))[:1] == ["beat"] for c in containers(d))]
    assert [b["metadata"]["name"] for b in beats] == ["batchline-beat"]
    beat = beats[0]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"


def test_workers_read_settings_and_secrets_that_exist() -> None:
    config = config_map_data("batchline-config")
    assert "BATCHLINE_REDIS_URL" not in config, "the Redis URL carries the password: a Secret value"
    (secret,) = k8s_kind("Secret")
    assert {"ANTHROPIC_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "FLOWER_BASIC_AUTH", "REDIS_PASSWORD",
            "BATCHLINE_REDIS_URL"} <= set(secret["stringData"])
    url = urlsplit(secret["stringData"]["BATCHLINE_REDIS_URL"])
    assert (url.scheme, url.hostname, url.port) == ("redis", "batchline-redis", 6379)
    assert url.password == secret["stringData"]["REDIS_PASSWORD"]  # one password, two shapes
    for d in k8s_kind("Deployment"):
        for c in containers(d):
            assert {"configMapRef": {"name": "batchline-config"}} in c["envFrom"], d["metadata"]["name"]
            assert {"name": "BATCHLINE_REDIS_URL", "valueFrom": {"secretKeyRef": {
                "name": "batchline-secrets", "key": "BATCHLINE_REDIS_URL"}}} in c["env"], d["metadata"]["name"]
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == secret["metadata"]["name"]
                    assert ref["key"] in secret["stringData"]


def pod_labels(name: str) -> dict[str, str]:
    return dict(deployment(name)["spec"]["template"]["metadata"]["labels"])


def test_pdbs_cover_the_worker_roles() -> None:
    covered = set()
    for pdb in k8s_kind("PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"]
        for role in WORKER_SERVICES:
            if selector.items() <= pod_labels(f"batchline-{role}").items():
                covered.add(role)
        assert selector.get("app.kubernetes.io/component") != "beat"
    assert covered == set(WORKER_SERVICES)


def test_flower_service_selects_flower_pods() -> None:
    (svc,) = [s for s in k8s_kind("Service") if s["metadata"]["name"] == "batchline-flower"]
    assert svc["spec"]["selector"].items() <= pod_labels("batchline-flower").items()
    assert svc["spec"]["ports"][0]["port"] == 5555
    (c,) = containers(deployment("batchline-flower"))
    assert "command" not in c, "Flower runs through `batchline flower` (the image's entrypoint), which requires auth"
    command, args = parse_cli(as_argv(c["args"]))
    assert (command, args.port, args.no_auth) == ("flower", 5555, False)
    assert {"name": "FLOWER_BASIC_AUTH", "valueFrom": {"secretKeyRef": {"name": "batchline-secrets",
                                                                        "key": "FLOWER_BASIC_AUTH"}}} in c["env"]


def test_redis_statefulset_is_persistent_and_uses_redis_conf() -> None:
    (sts,) = k8s_kind("StatefulSet")
    assert sts["spec"]["replicas"] == 1
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    (c,) = containers(sts)
    assert "/usr/local/etc/redis/redis.conf" in redis_server_argv(as_argv(c.get("command")) + as_argv(c["args"]))
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    generated = {g["name"] for g in kustomization()["configMapGenerator"]}
    assert volumes["config"]["configMap"]["name"] in generated
    services_ = {s["metadata"]["name"] for s in k8s_kind("Service")}
    assert sts["spec"]["serviceName"] in services_
    assert "batchline-redis" in services_


def test_keda_scales_results_on_the_results_queue() -> None:
    (so,) = k8s_kind("ScaledObject")
    target = so["spec"]["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment"
    results = deployment(target["name"])
    (c,) = containers(results)
    assert role_of(as_argv(c["args"])) == "results"
    assert "replicas" not in results["spec"], "KEDA owns the replica count"
    (trigger,) = so["spec"]["triggers"]
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == QUEUES["results"]
    assert trigger["metadata"]["addressFromEnv"] in container_env_names(c)
    assert so["spec"]["minReplicaCount"] >= 1
    # Redis requires a password: KEDA reads it from the Secret through a TriggerAuthentication
    assert "password" not in trigger["metadata"] and "passwordFromEnv" not in trigger["metadata"]
    (auth,) = [a for a in k8s_kind("TriggerAuthentication") if a["metadata"]["name"] == trigger["authenticationRef"]["name"]]
    (ref,) = auth["spec"]["secretTargetRef"]
    (secret,) = k8s_kind("Secret")
    assert (ref["parameter"], ref["name"]) == ("password", secret["metadata"]["name"])
    assert ref["key"] == "REDIS_PASSWORD" and ref["key"] in secret["stringData"]


# --- locked down: Redis password, NetworkPolicy, metrics bind address -------------------------------


def test_redis_requires_a_password_from_the_secret() -> None:
    conf = redis_conf(REDIS_CONF.read_text())
    assert conf["protected-mode"] == "yes" and "requirepass" not in conf  # no password in a ConfigMap'd file
    redis = services()["redis"]
    argv = redis_server_argv(as_argv(redis["entrypoint"]) + as_argv(redis["command"]))
    assert argv[argv.index("--requirepass") + 1] == "$$REDIS_PASSWORD"  # $$: compose leaves it to the shell
    assert redis["environment"]["REDIS_PASSWORD"].startswith("${REDIS_PASSWORD:?")  # required, no default
    assert redis["environment"]["REDISCLI_AUTH"] == redis["environment"]["REDIS_PASSWORD"]  # the healthcheck
    (sts,) = k8s_kind("StatefulSet")
    (c,) = containers(sts)
    argv = redis_server_argv(as_argv(c.get("command")) + as_argv(c["args"]))
    assert argv[argv.index("--requirepass") + 1] == "$REDIS_PASSWORD"
    (secret,) = k8s_kind("Secret")
    for name in ("REDIS_PASSWORD", "REDISCLI_AUTH"):
        (env,) = [e for e in c["env"] if e["name"] == name]
        assert env["valueFrom"]["secretKeyRef"] == {"name": secret["metadata"]["name"], "key": "REDIS_PASSWORD"}


def test_network_policy_lets_only_batchline_pods_reach_redis() -> None:
    (policy,) = k8s_kind("NetworkPolicy")
    (sts,) = k8s_kind("StatefulSet")
    redis_labels = sts["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= redis_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": 6379, "protocol": "TCP"}]
    peers = rule["from"]
    assert all("ipBlock" not in p and p.get("podSelector") not in (None, {}) for p in peers), "a peer admits everyone"

    def admitted(labels: dict[str, str], namespace: str | None = None) -> bool:
        for peer in peers:
            if "namespaceSelector" in peer and peer["namespaceSelector"]["matchLabels"] != {
                    "kubernetes.io/metadata.name": namespace}:
                continue
            if "namespaceSelector" not in peer and namespace is not None:
                continue
            sel = peer["podSelector"]
            if sel.get("matchLabels", {}).items() <= labels.items() and all(
                    labels.get(e["key"]) in e["values"] for e in sel.get("matchExpressions", [])):
                return True
        return False

    for d in k8s_kind("Deployment"):
        assert admitted(d["spec"]["template"]["metadata"]["labels"]), d["metadata"]["name"]
    assert admitted({"batchline.io/redis-client": "true"})  # producers, labelled by their owners
    assert admitted({"app": "keda-operator"}, namespace="keda")  # the KEDA redis scaler
    assert not admitted({"app": "something-else"})
    assert not admitted({"app.kubernetes.io/name": "batchline", "app.kubernetes.io/component": "redis-probe"})
    assert not admitted({"app": "keda-operator"})  # only in KEDA's namespace


def test_metrics_bind_loopback_unless_the_manifest_says_otherwise() -> None:
    _, args = parse_cli(["metrics"])
    assert args.host == "127.0.0.1"
    invocations = [as_argv(s.get("command")) for s in services().values() if uses_batchline_entrypoint(s)]
    invocations += [as_argv(c.get("args")) for d in k8s_kind("Deployment") for c in containers(d)]
    metrics = [argv for argv in invocations if argv[:1] == ["metrics"]]
    assert len(metrics) == 2, "compose and Kubernetes each run `batchline metrics`"
    for argv in metrics:
        assert "--host" in argv, f"{argv}: the bind address must be explicit"
        assert parse_cli(argv)[1].host == "0.0.0.0"
    assert any(p.startswith("127.0.0.1:") for p in services()["metrics"]["ports"])
    (svc,) = [s for s in k8s_kind("Service") if s["metadata"]["name"] == "batchline-metrics"]
    assert svc["spec"]["type"] == "ClusterIP"


def test_redis_has_maxmemory_for_the_intake_high_water_mark() -> None:
    """Admission control stops intake at BATCHLINE_INTAKE_MEMORY_PERCENT of maxmemory: it must be set."""
    redis = services()["redis"]
    (sts,) = k8s_kind("StatefulSet")
    (c,) = containers(sts)
    for argv in (redis_server_argv(as_argv(redis["entrypoint"]) + as_argv(redis["command"])),
                 redis_server_argv(as_argv(c.get("command")) + as_argv(c["args"]))):
        assert re.fullmatch(r"\d+(mb|gb)", argv[argv.index("--maxmemory") + 1]), argv
    assert redis_conf(REDIS_CONF.read_text())["maxmemory-policy"] == "noeviction"


def test_gateway_has_a_service_probes_and_an_hpa() -> None:
    (c,) = containers(deployment("batchline-gateway"))
    assert as_argv(c["args"])[0] == "gateway"
    parse_cli(as_argv(c["args"]))
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    (svc,) = [s for s in k8s_kind("Service") if s["metadata"]["name"] == "batchline-gateway"]
    assert svc["spec"]["selector"].items() <= pod_labels("batchline-gateway").items()
    (hpa,) = k8s_kind("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "batchline-gateway" and hpa["spec"]["minReplicas"] >= 2
    assert as_argv(services()["gateway"]["command"])[0] == "gateway"


def test_lifecycle_rule_expires_params_objects_under_the_compose_prefix() -> None:
    rules = json.loads((DEPLOY / "s3-lifecycle.json").read_text())["Rules"]
    (rule,) = [r for r in rules if r["ID"] == "batchline-params-backstop"]
    prefix = compose()["x-batchline-env"]["BATCHLINE_S3_PREFIX"]
    assert rule["Status"] == "Enabled" and rule["Filter"]["Prefix"] == f"{prefix}/params/"
    # longer than a request can wait for its create: the sweeper deletes objects, this is the backstop
    assert rule["Expiration"]["Days"] >= 30
    script = " ".join(as_argv(services()["s3-init"]["command"]))
    assert "mc ilm import" in script and "s3-lifecycle.json" in script
    assert any("s3-lifecycle.json" in v for v in services()["s3-init"]["volumes"])
