#!/usr/bin/env python3
"""Prints the README's scenario knobs table from `recstream schema` (read on stdin).

    recstream schema | python3 scripts/readme-knobs.py

A test (ReadmeTests) checks that the README names every key; this keeps the defaults and
ranges in the table the same as the schema's.
"""
import json
import sys


def fmt(v):
    return f"{v:g}" if isinstance(v, float) else str(v)


def ranges(v):
    out = []
    for key, sym in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<=")):
        if key in v:
            out.append(f"{sym} {fmt(v[key])}")
    return f" ({', '.join(out)})" if out else ""


def default(v, required):
    if required:
        return "required"
    if "default" not in v:
        return ""
    return "`" + json.dumps(v["default"]) + "`"


def tagged(v, p, dflt, variant, rows):
    """A tagged object (one of several `type`s): a row for it, then each variant's keys
    (recursively, for a tagged object inside a variant)."""
    types = ", ".join(f"`{o['properties']['type']['const']}`" for o in v["oneOf"])
    rows.append((f"`{p}`{variant}", "object", dflt, f"{v['description']} `type`: {types}"))
    for o in v["oneOf"]:
        name = o["properties"]["type"]["const"]
        for pk, pv in o["properties"].items():
            if pk == "type":
                continue
            if "oneOf" in pv:
                tagged(pv, f"{p}.{pk}", default(pv, False), f" ({name})", rows)
            else:
                rows.append((f"`{p}.{pk}` ({name})", pv.get("type", ""), default(pv, False), pv["description"] + ranges(pv)))


def walk(node, path, rows):
    required = set(node.get("required", []))
    for key, v in node.get("properties", {}).items():
        p = f"{path}.{key}" if path else key
        if "oneOf" in v:
            tagged(v, p, default(v, key in required), "", rows)
        elif v.get("type") == "object" and "properties" in v:
            walk(v, p, rows)
        elif v.get("type") == "array" and v["items"].get("type") == "object":
            rows.append((f"`{p}`", "array", default(v, key in required), v["description"]))
            walk(v["items"], p + "[]", rows)
        else:
            t = v.get("type", "")
            if "anyOf" in v:
                t = v["anyOf"][0].get("type", "") + " or null"
            desc = v.get("description", "") + ranges(v)
            if t == "array" and "enum" in v["items"]:
                desc += " One or more of: " + ", ".join(f"`{e}`" for e in v["items"]["enum"]) + "."
            rows.append((f"`{p}`", t, default(v, key in required), desc))
            # A nullable object (null: not set): its keys, when set.
            if "anyOf" in v and v["anyOf"][0].get("type") == "object":
                walk(v["anyOf"][0], p, rows)


rows = []
walk(json.load(sys.stdin), "", rows)
print("| key | type | default | effect |")
print("|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
