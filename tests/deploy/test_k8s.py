"""deploy/k8s (+ deploy/kustomization.yaml): rendered by kustomize, validated against the
Kubernetes 1.37 schemas, then run.

No cluster runs here.  ``kubectl kustomize`` (offline) renders the manifests as ``kubectl apply -k``
would; every resource is validated *strictly* (unknown fields rejected) with the schemas bundled
in the ``kubernetes-validate`` wheel.  Then the parts that can run on one machine do: the NATS
ConfigMap's files under a real nats-server with the StatefulSet's environment (the kubelet's
``$(VAR)`` expansion is emulated by :func:`pod_env`), and camhub pods as processes with the
Deployment's command and environment whose startup/readiness/liveness probe commands must pass,
and fail for the right pod.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from services.cli import SERVICE_NAMES
from tests.deploy.support import (
    CLUSTER_CONF,
    DEPLOY,
    K8S,
    NATS_CONF,
    ROOT,
    DeployNats,
    Proc,
    bin_env,
    conf_variables,
    k8s_file_resources,
    kustomize,
    map_argv,
    random_passwords,
    run_check,
    wait_check,
)

K8S_VERSION = "1.37.0"
#: The Secrets docs/deploy.md tells the operator to create: name -> keys.
SECRETS = {
    "camhub-nats": ("ingest", "hls", "control", "egress", "gateway", "admin"),
    "camhub-secrets": ("secret-key", "api-token"),
}
IMAGE_UID = 10001  # USER in deploy/Dockerfile


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    try:
        return kustomize()
    except FileNotFoundError:
        pytest.skip("kubectl (for `kubectl kustomize`) is not installed on this machine")


def by_kind(resources: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def container(resources: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    spec = by_kind(resources, kind)[name]["spec"]["template"]["spec"]
    assert len(spec["containers"]) == 1
    return dict(spec["containers"][0])


def pod_env(
    resources: list[dict[str, Any]],
    kind: str,
    name: str,
    secrets: dict[str, dict[str, str]],
    pod_name: str,
    host_ip: str = "127.0.0.1",
) -> dict[str, str]:
    """The environment the kubelet would give the container (envFrom, fieldRef, secretKeyRef and
    ``$(VAR)`` expansion of earlier variables).

    Raises:
        KeyError: a referenced ConfigMap, Secret or key does not exist (the pod would not start).
    """
    configmaps = by_kind(resources, "ConfigMap")
    c = container(resources, kind, name)
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        env.update(configmaps[source["configMapRef"]["name"]]["data"])
    fields = {
        "metadata.name": pod_name,
        "status.hostIP": host_ip,
        "status.podIP": host_ip,
        "metadata.namespace": "camhub",
    }
    for item in c.get("env", []):
        if "value" in item:
            env[item["name"]] = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), item["value"])
        elif "fieldRef" in item["valueFrom"]:
            env[item["name"]] = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[ref["name"]][ref["key"]]
    return env


def secret_values(passwords: dict[str, str]) -> dict[str, dict[str, str]]:
    nats = {
        u: passwords["NATS_ADMIN_PASSWORD" if u == "admin" else f"CAMHUB_NATS_PASSWORD_{u.upper()}"]
        for u in SECRETS["camhub-nats"]
    }
    return {"camhub-nats": nats, "camhub-secrets": {"secret-key": "k" * 32, "api-token": "t" * 32}}


# --- schema validation -----------------------------------------------------------------------------------


def test_every_rendered_resource_validates_strictly(rendered: list[dict[str, Any]]) -> None:
    kinds = sorted(f"{r['kind']}/{r['metadata']['name']}" for r in rendered)
    assert {
        "StatefulSet/nats",
        "Service/nats",
        "Service/nats-headless",
        "Service/gateway",
        "Ingress/gateway",
        "Namespace/camhub",
        "ConfigMap/camhub-config",
        "NetworkPolicy/nats",
        *(f"Deployment/{n}" for n in SERVICE_NAMES),
    } <= set(kinds)
    for resource in [*rendered, *k8s_file_resources()]:
        kubernetes_validate.validate(resource, K8S_VERSION, strict=True)
        if resource["kind"] != "Namespace":
            assert resource["metadata"]["namespace"] == "camhub"


def test_validation_is_strict() -> None:
    """A misspelt field (``livenessprobe``) is rejected, so the test above can fail."""
    deployment = by_kind(k8s_file_resources(), "Deployment")["hls"]
    c = deployment["spec"]["template"]["spec"]["containers"][0]
    c["livenessprobe"] = c.pop("livenessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_kustomization_covers_every_manifest_and_generates_nats_config(rendered: list[dict[str, Any]]) -> None:
    import yaml

    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(f"k8s/{p.name}" for p in K8S.glob("*.yaml"))
    generated = [cm for name, cm in by_kind(rendered, "ConfigMap").items() if name.startswith("nats-config-")]
    assert len(generated) == 1, "nats-config gets a content hash suffix"
    # Byte for byte the files docker compose mounts: one copy of the users and permissions.
    assert generated[0]["data"] == {"nats.conf": NATS_CONF.read_text(), "cluster.conf": CLUSTER_CONF.read_text()}
    volumes = by_kind(rendered, "StatefulSet")["nats"]["spec"]["template"]["spec"]["volumes"]
    assert {"name": "config", "configMap": {"name": generated[0]["metadata"]["name"]}} in volumes


# --- NATS --------------------------------------------------------------------------------------------------


def test_nats_statefulset_is_a_three_node_cluster_matching_cluster_conf(rendered: list[dict[str, Any]]) -> None:
    sts = by_kind(rendered, "StatefulSet")["nats"]
    headless = by_kind(rendered, "Service")[sts["spec"]["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True
    replicas = sts["spec"]["replicas"]
    assert replicas == 3
    routes = re.findall(r'"nats://([a-z0-9.-]+):(\d+)"', CLUSTER_CONF.read_text())
    assert routes == [(f"nats-{i}.{headless['metadata']['name']}", "6222") for i in range(replicas)]
    c = container(rendered, "StatefulSet", "nats")
    assert c["command"][:3] == ["nats-server", "--config", "/etc/nats/cluster.conf"] and "-m" in c["command"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"client": 4222, "cluster": 6222, "monitor": 8222}
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz?js-enabled-only=true"
    assert c["readinessProbe"]["httpGet"]["path"] == "/healthz?js-server-only=true"
    assert c["lifecycle"]["preStop"]["exec"]["command"][:2] == ["nats-server", "--signal"]
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert {"name": "data", "mountPath": "/data"} in c["volumeMounts"]
    assert by_kind(rendered, "PodDisruptionBudget")["nats"]["spec"]["maxUnavailable"] == 1


def test_nats_pod_environment_feeds_the_real_server(rendered: list[dict[str, Any]], tmp_path: Path) -> None:
    """The ConfigMap's files + the StatefulSet env (as the kubelet expands it) pass ``nats-server -t``."""
    passwords = random_passwords()
    env = pod_env(rendered, "StatefulSet", "nats", secret_values(passwords), "nats-1")
    assert conf_variables(NATS_CONF) | conf_variables(CLUSTER_CONF) <= set(env)
    assert env["CAMHUB_NATS_PASSWORD_GATEWAY"] == f'"{passwords["CAMHUB_NATS_PASSWORD_GATEWAY"]}"'
    cm = next(cm for name, cm in by_kind(rendered, "ConfigMap").items() if name.startswith("nats-config-"))
    for fname, text in cm["data"].items():
        (tmp_path / fname).write_text(text)
    out = subprocess.run(
        [*map_argv(["nats-server"]), "-t", "-c", str(tmp_path / "cluster.conf")],
        env=bin_env(env),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode == 0, out.stdout + out.stderr


# --- camhub Deployments -----------------------------------------------------------------------------


def test_each_service_deployment(rendered: list[dict[str, Any]]) -> None:
    services = by_kind(rendered, "Service")
    for name in SERVICE_NAMES:
        dep = by_kind(rendered, "Deployment")[name]
        pod = dep["spec"]["template"]
        assert dep["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        spec = pod["spec"]
        c = container(rendered, "Deployment", name)
        assert c["command"] == ["camhub", name]
        out = subprocess.run([*map_argv(c["command"]), "--help"], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert c["image"].split(":")[0] == "camhub"
        req = c["resources"]["requests"]
        assert req["cpu"] and req["memory"] and c["resources"]["limits"]["memory"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert probe in c, (name, probe)
        assert spec["securityContext"]["runAsNonRoot"] and spec["securityContext"]["runAsUser"] == IMAGE_UID
        assert (
            c["securityContext"]["readOnlyRootFilesystem"] and c["securityContext"]["allowPrivilegeEscalation"] is False
        )
        assert {m["mountPath"] for m in c["volumeMounts"]} == {"/data", "/tmp"}
        env = {e["name"]: e for e in c["env"]}
        assert env["CAMHUB_NATS_USER"]["value"] == name
        assert env["CAMHUB_NATS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "camhub-nats", "key": name}
        assert env["CAMHUB_INSTANCE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        assert ("CAMHUB_SECRET_KEY" in env) == (name in {"gateway", "control", "ingest"}), name
        if name in ("ingest", "egress"):
            assert spec["hostNetwork"] is True and spec["dnsPolicy"] == "ClusterFirstWithHostNet"
            assert env["CAMHUB_WEBRTC_HOST"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
        else:
            assert "hostNetwork" not in spec
        if name == "gateway":
            assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
            assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
            assert {"name": "http", "containerPort": 8080} in c["ports"]
            assert env["CAMHUB_HTTP_HOST"]["value"] == "0.0.0.0"
            svc = services["gateway"]
            assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
            backend = by_kind(rendered, "Ingress")["gateway"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]
            assert backend["service"]["name"] == "gateway"
            assert backend["service"]["port"]["name"] in {p["name"] for p in svc["spec"]["ports"]}
        else:
            assert c["readinessProbe"]["exec"]["command"] == ["python", "/app/deploy/probe.py", "ready", name]
            assert c["startupProbe"]["exec"]["command"] == ["python", "/app/deploy/probe.py", "ready", name]
            assert c["livenessProbe"]["exec"]["command"] == ["python", "/app/deploy/probe.py", "live", name]
    config = by_kind(rendered, "ConfigMap")["camhub-config"]["data"]
    assert config["CAMHUB_KV_REPLICAS"] == "3" and config["CAMHUB_NATS_URL"] == "nats://nats:4222"


def test_docs_create_every_secret_key_the_manifests_reference(rendered: list[dict[str, Any]]) -> None:
    referenced: set[tuple[str, str]] = set()
    for r in rendered:
        for c in r.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    referenced.add((ref["name"], ref["key"]))
    assert referenced == {(n, k) for n, keys in SECRETS.items() for k in keys}
    docs = (ROOT / "docs" / "deploy.md").read_text()
    for name, keys in SECRETS.items():
        assert f"kubectl -n camhub create secret generic {name}" in docs, name
        for key in keys:
            assert f"--from-literal={key}=" in docs, (name, key)


# --- and run the pods' commands ------------------------------------------------------------------------


@pytest.fixture
def k8s_nats(tmp_path: Path) -> Iterator[tuple[DeployNats, dict[str, str]]]:
    passwords = random_passwords()
    srv = DeployNats(tmp_path / "nats", passwords)
    srv.start()
    yield srv, passwords
    srv.stop()


def _probe(c: dict[str, Any], which: str) -> list[str]:
    return list(c[which]["exec"]["command"])


@pytest.mark.slow
async def test_pods_pass_their_probes_and_fail_them_for_the_right_pod(
    rendered: list[dict[str, Any]], k8s_nats: tuple[DeployNats, dict[str, str]], tmp_path: Path
) -> None:
    """hls (pod network) and ingest (host network) as two pods each; probes match their own pod only."""
    srv, passwords = k8s_nats
    secrets = secret_values(passwords)
    procs: list[Proc] = []
    try:
        pods: dict[str, tuple[Proc, dict[str, str]]] = {}
        for name in ("hls", "ingest"):
            for pod in (f"{name}-5d8c7b-aaaaa", f"{name}-5d8c7b-bbbbb"):
                env = pod_env(rendered, "Deployment", name, secrets, pod)
                # One loopback nats-server instead of the 3-node Service: URL and replicas follow it.
                env.update(CAMHUB_NATS_URL=srv.url, CAMHUB_KV_REPLICAS="1", CAMHUB_DATA_DIR=str(tmp_path / pod))
                proc = Proc(pod, container(rendered, "Deployment", name)["command"], env, tmp_path / "logs").start()
                procs.append(proc)
                pods[pod] = (proc, env)

        async def check(name: str) -> None:
            c = container(rendered, "Deployment", name)
            for pod in (f"{name}-5d8c7b-aaaaa", f"{name}-5d8c7b-bbbbb"):
                proc, env = pods[pod]
                limit = c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"]
                code, out = await wait_check(_probe(c, "startupProbe"), env, timeout=limit)
                assert code == 0, f"{pod}: {out}\n{proc.log()[-2000:]}"
                for which in ("readinessProbe", "livenessProbe"):
                    code, out = await run_check(_probe(c, which), env)
                    assert code == 0, (pod, which, out)
                    assert pod in out
            # Pod a stops; pod b still answers for the service, but not for a.
            proc_a, env_a = pods[f"{name}-5d8c7b-aaaaa"]
            await asyncio.to_thread(proc_a.stop)
            for which in ("readinessProbe", "livenessProbe"):
                code, out = await run_check(_probe(c, which), env_a)
                assert code == 1 and f"{name}-5d8c7b-bbbbb" in out, (which, out)
            code, _ = await run_check(_probe(c, "readinessProbe"), pods[f"{name}-5d8c7b-bbbbb"][1])
            assert code == 0

        await asyncio.gather(check("hls"), check("ingest"))
        for proc in procs:
            assert "permissions violation" not in proc.log().lower(), proc.log()[-2000:]
    finally:
        for proc in procs:
            proc.stop()
