"""Checks that every example in an OpenAPI 3.1 document is valid against its own schema.

    python check_examples.py openapi.json

A client author copies the examples; one that the API would refuse (a topic that does not
exist, a field of the wrong type) is a bug in the contract, and neither the spec validator nor
Schemathesis looks at them this way. Run by scripts/schemathesis on the live document.
"""

import json
import sys

from jsonschema import Draft202012Validator


def main(path):
    doc = json.load(open(path))
    # Schemas refer to each other as `#/components/schemas/…`: validate inside a root that
    # carries the document's components, so those references resolve.
    components = doc.get("components", {})

    def check(where, schema, example):
        root = {"components": components, "allOf": [schema]}
        errors = sorted(Draft202012Validator(root).iter_errors(example), key=str)
        return [f"{where}: {e.json_path}: {e.message}" for e in errors]

    problems = []
    checked = 0
    for name, schema in components.get("schemas", {}).items():
        if "example" in schema:
            problems += check(f"components.schemas.{name}", schema, schema["example"])
            checked += 1
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            where = f"{method.upper()} {path}"
            for p in op.get("parameters", []):
                if "example" in p and "schema" in p:
                    problems += check(f"{where} parameter {p['name']}", p["schema"], p["example"])
                    checked += 1
            bodies = [("request", op.get("requestBody", {}))]
            bodies += [(f"response {s}", r) for s, r in op["responses"].items()]
            for label, body in bodies:
                for media_type, media in body.get("content", {}).items():
                    if "example" in media and "schema" in media:
                        problems += check(
                            f"{where} {label} {media_type}", media["schema"], media["example"]
                        )
                        checked += 1
    for p in problems:
        print(p)
    print(f"examples: {checked} checked, {len(problems)} invalid")
    return 1 if problems or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
