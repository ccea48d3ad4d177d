"""The Kubernetes half of `make deploy-check` (deploy/deploy-check.py runs it).

Every rendered object is validated against the schema of its kind: the vendored
Kubernetes JSON schemas (strict: an unknown field is an error, as `kubectl apply
--validate=strict` would say) or, for CloudNativePG, the CRD's openAPIV3Schema made
strict the same way (the API server would prune an unknown field silently, so a typo
would be lost, not refused). Then the wiring the schemas cannot see: references to
ConfigMaps and Secrets, the database URL's host, the probes, the drain budget, the
migration Job, the selectors of the PDBs and HPAs.
"""

import copy
import json
import os

import jsonschema

SCHEMAS = os.path.join(os.path.dirname(__file__), "schemas")
K8S_SCHEMA = os.path.join(SCHEMAS, "kubernetes", "v1.32.0-strict.json")
CRDS = {
    ("postgresql.cnpg.io/v1", "Cluster"): "cloudnative-pg/clusters.json",
    ("postgresql.cnpg.io/v1", "ScheduledBackup"): "cloudnative-pg/scheduledbackups.json",
}
# Made outside these manifests (docs/operations.md, "Kubernetes"): by CloudNativePG, or
# by the cluster's secret store.
EXTERNAL_SECRETS = {"cart-db-app", "cart-nats", "cart-backup-s3"}


def strict(schema):
    """An OpenAPI schema where objects with listed properties refuse others."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if (
                node.get("type") == "object"
                and "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    return schema


class Validators:
    def __init__(self):
        k8s = json.load(open(K8S_SCHEMA))
        self.k8s = {}
        for key, schema in k8s["kinds"].items():
            api, kind = key.rsplit("/", 1)
            full = dict(schema, **{"$defs": k8s["$defs"], "$schema": k8s["$schema"]})
            self.k8s[(api, kind)] = jsonschema.Draft202012Validator(full)
        self.crd = {}
        for (api, kind), path in CRDS.items():
            crd = json.load(open(os.path.join(SCHEMAS, path)))
            version = api.split("/")[1]
            self.crd[(api, kind)] = jsonschema.Draft7Validator(
                strict(crd["versions"][version])
            )

    def errors(self, doc):
        key = (doc.get("apiVersion"), doc.get("kind"))
        validator = self.k8s.get(key) or self.crd.get(key)
        if validator is None:
            return [f"no vendored schema for {key[0]} {key[1]}"]
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.path)))
        ]


def name(doc):
    return f"{doc['kind']}/{doc['metadata']['name']}"


def pod_spec(doc):
    if doc["kind"] == "Deployment":
        return doc["spec"]["template"]["spec"]
    if doc["kind"] == "Job":
        return doc["spec"]["template"]["spec"]
    return None


def references(spec):
    """(kind, name) of every ConfigMap and Secret a pod spec reads."""
    refs = set()
    for c in spec.get("initContainers", []) + spec.get("containers", []):
        for e in c.get("envFrom", []):
            if "configMapRef" in e:
                refs.add(("ConfigMap", e["configMapRef"]["name"]))
            if "secretRef" in e:
                refs.add(("Secret", e["secretRef"]["name"]))
        for e in c.get("env", []):
            source = e.get("valueFrom", {})
            if "configMapKeyRef" in source:
                refs.add(("ConfigMap", source["configMapKeyRef"]["name"]))
            if "secretKeyRef" in source:
                refs.add(("Secret", source["secretKeyRef"]["name"]))
    return refs


def wiring(docs):
    """What the schemas cannot see; a list of problems."""
    problems = []
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    configs = by_kind.get("ConfigMap", {})
    secrets = set(by_kind.get("Secret", {})) | EXTERNAL_SECRETS
    clusters = by_kind.get("Cluster", {})
    deployments = by_kind.get("Deployment", {})
    for d in docs:
        spec = pod_spec(d)
        if spec is None:
            continue
        for kind, ref in sorted(references(spec)):
            known = configs if kind == "ConfigMap" else secrets
            if ref not in known:
                problems.append(f"{name(d)} reads {kind} {ref}, which is neither rendered nor external")
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            for e in c.get("envFrom", []):
                cm = configs.get(e.get("configMapRef", {}).get("name"), {})
                env = {**cm.get("data", {}), **env}
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("configMapKeyRef")
                if ref:
                    env[e["name"]] = configs.get(ref["name"], {}).get("data", {}).get(ref["key"])
            url = env.get("DATABASE_URL")
            if url is None:
                problems.append(f"{name(d)}/{c['name']}: no DATABASE_URL")
                continue
            host = env.get("CART_DB_HOST")
            if "$(CART_DB_HOST)" not in url or host not in {f"{n}-rw" for n in clusters}:
                problems.append(
                    f"{name(d)}/{c['name']}: DATABASE_URL {url} with CART_DB_HOST={host} is not "
                    f"the read-write Service of a rendered Cluster ({sorted(clusters)})"
                )
    for dname, d in deployments.items():
        spec = pod_spec(d)
        (main,) = spec["containers"]
        port = {p["name"]: p["containerPort"] for p in main.get("ports", [])}
        probes = {
            "livenessProbe": "/healthz",
            "readinessProbe": "/readyz",
            "startupProbe": "/healthz",
        }
        for probe, path in probes.items():
            got = main.get(probe, {}).get("httpGet", {})
            if got.get("path") != path or got.get("port") not in port:
                problems.append(f"{name(d)}: {probe} should GET {path} on a named container port")
        pre = main.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        grace = spec.get("terminationGracePeriodSeconds", 30)
        # The drain's budget as the pod gets it (cartd's default is 20 s).
        drain = 20
        for e in main.get("envFrom", []):
            data = configs.get(e.get("configMapRef", {}).get("name"), {}).get("data", {})
            drain = int(data.get("CART_DRAIN_TIMEOUT_SECS", drain))
        if grace < pre + drain + 5:
            problems.append(
                f"{name(d)}: terminationGracePeriodSeconds {grace} < preStop {pre} s + drain "
                f"{drain} s + 5 s margin"
            )
        inits = [c.get("command", []) for c in spec.get("initContainers", [])]
        if ["cartctl", "migrate", "--check"] not in inits:
            problems.append(f"{name(d)}: no init container waiting on `cartctl migrate --check`")
    jobs = [j for j in by_kind.get("Job", {}).values()]
    migrating = [
        j for j in jobs if pod_spec(j)["containers"][0].get("command") == ["cartctl", "migrate"]
    ]
    if len(migrating) != 1:
        problems.append(f"want one Job running `cartctl migrate`, found {len(migrating)}")
    for kind in ("PodDisruptionBudget", "HorizontalPodAutoscaler"):
        for obj in by_kind.get(kind, {}).values():
            if kind == "HorizontalPodAutoscaler":
                target = obj["spec"]["scaleTargetRef"]["name"]
                if target not in deployments:
                    problems.append(f"{name(obj)} scales {target}, which is not rendered")
                continue
            labels = obj["spec"]["selector"]["matchLabels"]
            hits = [
                n
                for n, dep in deployments.items()
                if labels.items() <= dep["spec"]["template"]["metadata"]["labels"].items()
            ]
            if len(hits) != 1:
                problems.append(f"{name(obj)} selects {hits}; want exactly one Deployment")
    for wanted in ("cartd", "cart-webhook"):
        for kind in ("Deployment", "PodDisruptionBudget", "HorizontalPodAutoscaler"):
            if wanted not in by_kind.get(kind, {}):
                problems.append(f"no {kind} {wanted}")
    return problems


def check(docs, label):
    """Schema errors and wiring problems of one rendered overlay, as printable lines."""
    validators = Validators()
    out = []
    for d in docs:
        for e in validators.errors(d):
            out.append(f"{label}: {name(d)}: {e}")
    out += [f"{label}: {p}" for p in wiring(docs)]
    return out
