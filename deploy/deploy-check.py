#!/usr/bin/env python3
"""make deploy-check: the deployment files, validated offline (no cluster, no Docker).

  - deploy/k8s: each overlay rendered by kustomize (`kubectl kustomize`, or `kustomize
    build`), every object against the vendored Kubernetes or CloudNativePG schema, then
    the wiring (check_k8s.py);
  - deploy/k8s/nats/values.yaml: keys against the chart's values.yaml, and the accounts
    and permissions tried on a real nats-server (check_nats.py);
  - deploy/compose/compose.yaml: against the Compose specification's JSON schema, with
    the files it mounts present and the services the cluster needs there.

Schemas: deploy/schemas/README.md (sources and versions). Exit status 1 on any problem.
"""

import os
import shutil
import subprocess
import sys

import jsonschema
import yaml

import check_k8s
import check_nats

HERE = os.path.dirname(os.path.abspath(__file__))
OVERLAYS = ["dev", "production"]
COMPOSE = os.path.join(HERE, "compose", "compose.yaml")
COMPOSE_SCHEMA = os.path.join(HERE, "schemas", "compose", "compose-spec.json")


def render(overlay):
    path = os.path.join(HERE, "k8s", "overlays", overlay)
    if shutil.which("kubectl"):
        cmd = ["kubectl", "kustomize", path]
    elif shutil.which("kustomize"):
        cmd = ["kustomize", "build", path]
    else:
        sys.exit("deploy-check: neither kubectl nor kustomize is installed (apt-get install kubectl)")
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"deploy-check: {' '.join(cmd)} failed:\n{out.stderr}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def compose():
    doc = yaml.safe_load(open(COMPOSE))
    schema = yaml.safe_load(open(COMPOSE_SCHEMA))
    validator = jsonschema.Draft7Validator(schema)
    out = [
        f"compose: {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in validator.iter_errors(doc)
    ]
    services = doc.get("services", {})
    images = {n: s.get("image", "") for n, s in services.items()}
    nats = [n for n, i in images.items() if i.startswith("nats:")]
    postgres = [n for n, i in images.items() if i.startswith("postgres:")]
    commands = {n: (s.get("command") or [""])[0] for n, s in services.items()}
    cartd = [n for n, c in commands.items() if c == "cartd"]
    webhook = [n for n, c in commands.items() if c == "cart-webhook"]
    for what, got, want in [
        ("NATS servers", nats, 3),
        ("PostgreSQL servers (primary and standby)", postgres, 2),
        ("cartd", cartd, 2),
        ("cart-webhook", webhook, 1),
    ]:
        if len(got) != want:
            out.append(f"compose: want {want} {what}, found {got}")
    for needed in ("otel-collector", "prometheus", "grafana", "migrate"):
        if needed not in services:
            out.append(f"compose: no service {needed}")
    base = os.path.dirname(COMPOSE)
    for n, s in services.items():
        for v in s.get("volumes", []):
            source = v.split(":")[0] if isinstance(v, str) else v.get("source", "")
            if source.startswith("."):
                if not os.path.exists(os.path.join(base, source)):
                    out.append(f"compose: {n} mounts {source}, which does not exist")
    return out


def self_test(docs):
    """Each check must be able to fail: known-bad copies of good input must be refused."""
    import copy

    def first(kind, name=None):
        return next(d for d in bad if d["kind"] == kind and (name is None or d["metadata"]["name"] == name))

    mutations = {
        "an unknown Deployment field": lambda: first("Deployment", "cartd")["spec"]["template"]["spec"]["containers"][0].update(livenessprobe={}),
        "a wrong type in a Service": lambda: first("Service")["spec"]["ports"][0].update(port="9464"),
        "an unknown CloudNativePG field": lambda: first("Cluster")["spec"].update(instancess=3),
        "a bad synchronous method": lambda: first("Cluster")["spec"]["postgresql"]["synchronous"].update(method="all"),
        "a database host that is not the -rw Service": lambda: first("ConfigMap")["data"].update(CART_DB_HOST="cart-db-ro"),
        "a grace period shorter than the drain": lambda: first("Deployment", "cartd")["spec"]["template"]["spec"].update(terminationGracePeriodSeconds=20),
        "a drain longer than the grace period": lambda: first("ConfigMap")["data"].update(CART_DRAIN_TIMEOUT_SECS="40"),
        "readiness on /healthz": lambda: first("Deployment", "cart-webhook")["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"].update(path="/healthz"),
    }
    missed = []
    for what, mutate in mutations.items():
        bad = copy.deepcopy(docs)
        mutate()
        if not check_k8s.check(bad, "self-test"):
            missed.append(what)
    doc = yaml.safe_load(open(COMPOSE))
    doc["services"]["cartd-1"]["restrat"] = "always"
    if not list(jsonschema.Draft7Validator(yaml.safe_load(open(COMPOSE_SCHEMA))).iter_errors(doc)):
        missed.append("an unknown Compose service key")
    return [f"self-test: {m} passed the checks" for m in missed], len(mutations) + 1


def main():
    problems = []
    counts = []
    for overlay in OVERLAYS:
        docs = render(overlay)
        problems += check_k8s.check(docs, f"k8s/{overlay}")
        kinds = sorted({d["kind"] for d in docs})
        counts.append(f"{overlay}: {len(docs)} objects ({', '.join(kinds)})")
    refused, mutations = self_test(render("production"))
    problems += refused
    nats, rules = check_nats.check()
    problems += nats
    problems += compose()
    for p in problems:
        print(f"deploy-check: {p}", file=sys.stderr)
    if problems:
        print(f"deploy-check: FAILED ({len(problems)} problems)", file=sys.stderr)
        return 1
    for c in counts:
        print(f"deploy-check: k8s {c}: schemas and wiring ok")
    print(f"deploy-check: nats values: chart keys ok; {rules} permission rules hold on nats-server")
    print("deploy-check: compose: compose-spec schema and services ok")
    print(f"deploy-check: self-test: {mutations} known-bad variants refused")
    return 0


if __name__ == "__main__":
    sys.exit(main())
