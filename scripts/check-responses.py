#!/usr/bin/env python3
"""Checks every answer the test suite received against docs/openapi.yaml (issue 22 §6).

    scripts/check-responses.py docs/openapi.yaml RESPONSES.jsonl [--require-every-operation]

RESPONSES.jsonl is what the Swift test clients record when ANONREG_RESPONSE_LOG names it
(Tests/AnonregTestSupport/ResponseLog.swift): method, request target, status and body of each
answer. For each one:

- a documented route and method: the status must be one the operation lists; a JSON body must
  validate against that response's schema (JSON Schema 2020-12, as OpenAPI 3.1 uses it); an
  NDJSON body line by line; and an error's code must be one the response's description names
  (`code`), so every refusal the server gives is documented with its status;
- a documented route with another method: 405 `method_not_allowed` (or 403 `unknown_peer`);
- an undocumented route: 404 `not_found` (or 403 `unknown_peer`), as the description says.

With --require-every-operation, every documented operation must have been exercised at least
once (make test), so the check cannot pass by seeing nothing. This complements the static
checks of the schema itself (openapi-spec-validator) and of the PROTOCOL.md examples: it looks
at what the server really answered.
"""
import json
import re
import sys
from collections import Counter

import yaml
from jsonschema import Draft202012Validator

ERROR_CODE = re.compile(r"`([a-z][a-z0-9_]*)`")


def inline(node, components, depth=0):
    """The schema with every local $ref replaced by its target (anonreg's schemas do not recurse)."""
    if depth > 50:
        raise ValueError("schema $ref nesting too deep")
    if isinstance(node, dict):
        if "$ref" in node and isinstance(node["$ref"], str) and node["$ref"].startswith("#/components/schemas/"):
            target = inline(components[node["$ref"].rsplit("/", 1)[1]], components, depth + 1)
            rest = {k: inline(v, components, depth + 1) for k, v in node.items() if k != "$ref"}
            return {**target, **rest} if rest else target
        return {k: inline(v, components, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [inline(v, components, depth + 1) for v in node]
    return node


def matcher(template):
    pattern = "^" + re.sub(r"\\\{[^/]+\\\}", "[^/]+", re.escape(template)) + "$"
    return re.compile(pattern)


def main():
    spec_path, log_path = sys.argv[1], sys.argv[2]
    require_all = "--require-every-operation" in sys.argv[3:]
    with open(spec_path, encoding="utf-8") as f:
        spec = yaml.safe_load(f)
    components = spec.get("components", {}).get("schemas", {})
    shared_responses = spec.get("components", {}).get("responses", {})
    error_schema = inline(components["Error"], components)
    routes = [(matcher(path), path, item) for path, item in spec["paths"].items()]
    methods = {"get", "post", "put", "delete", "patch", "head", "options"}
    validators = {}

    def validator(schema_key, schema):
        if schema_key not in validators:
            validators[schema_key] = Draft202012Validator(inline(schema, components))
        return validators[schema_key]

    def error_code(body):
        try:
            value = json.loads(body)
        except ValueError:
            return None
        if isinstance(value, dict) and isinstance(value.get("error"), dict):
            return value["error"].get("code")
        return None

    problems, seen, statuses = [], Counter(), Counter()
    total = 0
    with open(log_path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            total += 1
            record = json.loads(line)
            method, target, status, body = record["method"].lower(), record["target"], record["status"], record["body"]
            path = target.split("?", 1)[0]
            where = f"{record['method']} {target} -> {status} ({record.get('client')}, line {number})"

            def problem(text):
                problems.append(f"{where}: {text}; body: {body[:300]}")

            route = next(((template, item) for regex, template, item in routes if regex.match(path)), None)
            if route is None or method not in route[1]:
                allowed = ("405", {"method_not_allowed", "unknown_peer"}) if route else ("404", {"not_found", "unknown_peer"})
                statuses[("(no route)" if route is None else f"{route[0]} (other method)", status)] += 1
                code = error_code(body)
                if str(status) not in (allowed[0], "403") or code not in allowed[1]:
                    problem(f"an undocumented {'method' if route else 'route'} must answer {allowed[0]} with {sorted(allowed[1])}")
                elif errors := sorted(e.message for e in Draft202012Validator(error_schema).iter_errors(json.loads(body))):
                    problem("not the Error schema: " + "; ".join(errors))
                continue
            template, item = route
            operation = item[method]
            key = f"{method.upper()} {template}"
            seen[key] += 1
            statuses[(key, status)] += 1
            responses = operation.get("responses", {})
            response = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX") or responses.get("default")
            if response is not None and "$ref" in response:
                # A shared response (components/responses), such as the clinic budget's 429.
                response = shared_responses[response["$ref"].rsplit("/", 1)[1]]
            if response is None:
                problem(f"status {status} is not documented for {key} (documented: {', '.join(sorted(responses))})")
                continue
            content = response.get("content", {})
            if not content:
                if body.strip():
                    problem("the response documents no body, but one came")
                continue
            if record.get("truncated"):
                continue
            try:
                value, is_json = json.loads(body), True
            except ValueError:
                value, is_json = None, False
            textual = [t for t in content if t.startswith("text/") or t == "application/octet-stream"]
            if "application/json" in content and (is_json or not textual):
                if not is_json:
                    problem("the body is not JSON")
                    continue
                schema = content["application/json"].get("schema")
                if schema is not None:
                    errors = sorted(e.message for e in validator((key, status), schema).iter_errors(value))
                    if errors:
                        problem("does not match the schema: " + "; ".join(errors[:5]))
                code = error_code(body)
                if code is not None:
                    listed = set(ERROR_CODE.findall(response.get("description", "")))
                    if code not in listed:
                        problem(f"error code `{code}` is not among those the {status} response of {key} lists ({', '.join(sorted(listed)) or 'none'})")
            elif "application/x-ndjson" in content:
                schema = content["application/x-ndjson"].get("schema")
                for row in [r for r in body.split("\n") if r.strip()]:
                    try:
                        value = json.loads(row)
                    except ValueError:
                        problem("a line of the NDJSON body is not JSON")
                        break
                    if schema is not None:
                        errors = sorted(e.message for e in validator((key, status, "ndjson"), schema).iter_errors(value))
                        if errors:
                            problem("an NDJSON line does not match the schema: " + "; ".join(errors[:5]))
                            break
            elif not textual:
                problem(f"the body fits none of the documented content types ({', '.join(content)})")
            # text/plain (metrics), text/csv (statistics) and application/octet-stream (backups)
            # have no schema to check.

    documented = {f"{m.upper()} {p}" for p, item in spec["paths"].items() for m in item if m in methods}
    missing = sorted(documented - set(seen))
    print(f"responses: {total} checked against {spec_path}; {len(seen)} of {len(documented)} operations exercised; "
          f"{len(problems)} problem(s)")
    for (key, status), count in sorted(statuses.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        print(f"  {count:6d}  {status}  {key}")
    if total < 100:
        problems.append(f"only {total} responses were recorded: was ANONREG_RESPONSE_LOG passed to swift test?")
    if require_all and missing:
        problems.append("never exercised by the test suite: " + ", ".join(missing))
    for text in problems[:200]:
        print("PROBLEM " + text)
    if len(problems) > 200:
        print(f"... and {len(problems) - 200} more")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
