"""Every documented error of every path, through the generated Python client.

For each operation of openapi.json and each error status it documents, hands the generated
module's response parser a response of that status with a body of the documented shape (the
document's example when it has one, otherwise the smallest instance of the schema), on a client
that raises on any status it does not know. The parser must return the documented model: a
status the client cannot parse, or a body it parses as something else, fails the sweep.

    python error_sweep.py openapi.json
"""
import importlib
import json
import pkgutil
import sys

import httpx
from openapi_python_client.strings import snake_case

import nta_user_svc_client.api
from nta_user_svc_client import Client

doc = json.load(open(sys.argv[1]))
schemas = doc["components"]["schemas"]
METHODS = {"get", "put", "post", "delete", "patch"}


def resolve(schema):
    while "$ref" in schema:
        schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def instance(schema):
    """The smallest value of `schema` (its example when it has one)."""
    schema = resolve(schema)
    if "example" in schema:
        return schema["example"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return instance(schema[key][0])
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next(k for k in kind if k != "null")
    if kind == "object":
        required = schema.get("required", [])
        return {k: instance(v) for k, v in schema.get("properties", {}).items() if k in required}
    if kind == "array":
        return [instance(schema.get("items", {})) for _ in range(schema.get("minItems", 0))]
    if kind == "string":
        return "2026-01-01T00:00:00Z" if schema.get("format") == "date-time" else "x"
    return {"integer": 1, "number": 1.5, "boolean": True, "null": None}[kind]


modules = {}
for info in pkgutil.walk_packages(nta_user_svc_client.api.__path__, "nta_user_svc_client.api."):
    if not info.ispkg:
        modules[info.name.rsplit(".", 1)[1]] = info.name

client = Client(base_url="http://127.0.0.1", raise_on_unexpected_status=True)
swept = 0
for path, item in doc["paths"].items():
    for method, operation in item.items():
        if method not in METHODS:
            continue
        module = importlib.import_module(modules[snake_case(operation["operationId"])])
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            label = f"{method.upper()} {path} {status}"
            content = response.get("content", {}).get("application/json")
            if content is None:
                raw = httpx.Response(int(status))
            else:
                body = content.get("example", instance(content["schema"]))
                raw = httpx.Response(int(status), json=body)
            try:
                parsed = module._parse_response(client=client, response=raw)
            except Exception as error:  # noqa: BLE001 - any failure is the finding
                raise AssertionError(f"{label}: the client cannot parse it: {error!r}") from error
            if content is not None:
                ref = content["schema"].get("$ref")
                expected = ref.rsplit("/", 1)[1] if ref else None
                assert parsed is not None, f"{label}: parsed as None"
                if expected:
                    assert type(parsed).__name__ == expected, f"{label}: parsed as {type(parsed).__name__}, not {expected}"
            swept += 1

assert swept > 400, f"only {swept} documented errors found"
print(f"error sweep: {swept} documented errors, each parsed as its documented model")
