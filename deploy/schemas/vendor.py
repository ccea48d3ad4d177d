#!/usr/bin/env python3
"""Re-vendors the schemas of this folder from their sources (README.md names them).

  vendor.py k8s <kubernetes-json-schema/vX-local-strict dir> <out.json> <kind-file>...
      one file: the named kinds' schemas and the definitions they reach, and nothing
      else (the whole set is 1.3 MB; the kinds we ship use a fraction).
  vendor.py crd <crd.yaml> <out.json>
      the CRD's openAPIV3Schema of each served version, as {"<version>": schema}.

Needs PyYAML. Only run by hand when moving to a new version; make deploy-check reads the
vendored files only.
"""
import json
import os
import sys

import yaml


DEFS_PREFIX = "/api/_definitions.json#/$defs/"


def refs(node, found):
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref.split("/")[-1])
        for v in node.values():
            refs(v, found)
    elif isinstance(node, list):
        for v in node:
            refs(v, found)


def k8s(src, kind_files, out):
    """Each kind's schema (its group/version/kind as key) and the definitions they reach,
    with every reference made local ("#/$defs/<name>")."""
    defs_doc = json.load(open(os.path.join(src, "_definitions.json")))
    defs = defs_doc["$defs"]
    kinds = {}
    todo = []
    for kind_file in kind_files:
        schema = json.load(open(os.path.join(src, kind_file)))
        schema.pop("$id", None)
        schema.pop("$schema", None)
        (gvk,) = schema["x-kubernetes-group-version-kind"]
        api = "/".join(p for p in (gvk["group"], gvk["version"]) if p)
        kinds[f"{api}/{gvk['kind']}"] = schema
        found = set()
        refs(schema, found)
        todo.extend(found)
    keep = {}
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep[name] = defs[name]
        found = set()
        refs(defs[name], found)
        todo.extend(found)
    body = {"$schema": defs_doc["$schema"], "kinds": kinds, "$defs": keep}
    text = json.dumps(body, separators=(",", ":"), sort_keys=True)
    text = text.replace(json.dumps(DEFS_PREFIX)[:-1], '"#/$defs/')
    with open(out, "w") as f:
        f.write(text)


def crd(path, out):
    doc = yaml.safe_load(open(path))
    schemas = {
        v["name"]: v["schema"]["openAPIV3Schema"]
        for v in doc["spec"]["versions"]
        if v.get("served")
    }
    body = {
        "group": doc["spec"]["group"],
        "kind": doc["spec"]["names"]["kind"],
        "versions": schemas,
    }
    with open(out, "w") as f:
        json.dump(body, f, separators=(",", ":"), sort_keys=True)


if __name__ == "__main__":
    if sys.argv[1] == "k8s":
        k8s(sys.argv[2], sys.argv[4:], sys.argv[3])
    elif sys.argv[1] == "crd":
        crd(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
