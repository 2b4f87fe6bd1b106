#!/usr/bin/env python3
"""Checks the protocol's two documents against each other (run by `make test`):

1. docs/openapi.yaml is a valid OpenAPI 3.1 document (openapi-spec-validator).
2. Every curl example in docs/PROTOCOL.md is checked against docs/openapi.yaml:
   - the path and method are an operation of the spec (or the example shows the error the
     daemon gives for a path or method it does not serve);
   - an error answer validates against the `Error` schema, its code is in PROTOCOL.md's table of
     codes, and the operation documents a response with that code's HTTP status;
   - a successful answer validates against the operation's 2xx response schema, and its JSON
     request body against the operation's request schema.

Examples shortened with `…` (PROTOCOL.md says some are) are checked for what they show: an
elided part of an object excuses that object's missing required fields, and a string with `…`
in it excuses its pattern. Prints one line per problem and exits 1 if there is any.
"""
from __future__ import annotations

import json
import pathlib
import re
import shlex
import sys
from typing import Any, Dict, List, Optional, Tuple

import yaml
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

ROOT = pathlib.Path(__file__).resolve().parent.parent
BASE = "urn:anonreg:openapi"
ELIDED = "__elided__"
# Answered before any route is chosen, on every path (docs/PROTOCOL.md §5): not per operation.
GLOBAL_CODES = {"unknown_peer", "not_found", "method_not_allowed"}


def load_spec() -> Dict[str, Any]:
    spec = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    validate_spec(spec)
    return spec


def examples(text: str) -> List[Tuple[int, str, List[str]]]:
    """(line number, curl command joined across `\\` continuations, answer lines)."""
    lines = text.split("\n")
    out = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("    $ curl "):
            start = i + 1
            command = line[6:]
            while command.endswith("\\"):
                i += 1
                command = command[:-1] + " " + lines[i].strip()
            answer = []
            i += 1
            while i < len(lines) and lines[i].startswith("    ") and not lines[i].startswith("    $ ") \
                    and not lines[i].startswith("    # "):
                answer.append(lines[i][4:])
                i += 1
            out.append((start, command, answer))
            continue
        i += 1
    return out


def parse_curl(command: str) -> Tuple[str, str, Optional[str], bool]:
    """(method, path with query, JSON body or None, whether a body is sent as something else)."""
    args = shlex.split(command.replace('"$SOCK"', "SOCK").replace("$CASE", "case_63e3f93b198b65b144e9454d1914d739"))
    method, body, url, other_body = None, None, None, False
    i = 1
    while i < len(args):
        a = args[i]
        if a in ("--unix-socket", "-o", "-H"):
            i += 2
            continue
        if a == "-X":
            method = args[i + 1]
            i += 2
            continue
        if a == "--json":
            body = args[i + 1]
            i += 2
            continue
        if a in ("-d", "--data", "--data-binary"):
            other_body = True
            body = args[i + 1]
            i += 2
            continue
        if a.startswith("http://"):
            url = a
        i += 1
    assert url, f"no URL in {command}"
    path = re.sub(r"^http://[^/]+", "", url)
    return (method or ("POST" if body is not None else "GET")), path, body, other_body


def operation(spec: Dict[str, Any], method: str, path: str) -> Tuple[Optional[str], Optional[Dict[str, Any]]]:
    bare = path.split("?")[0]
    for template, item in spec["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, bare) and method.lower() in item:
            return template, item[method.lower()]
    return None, None


def pointer(*parts: str) -> str:
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def elide(text: str) -> str:
    """Marks the elisions of a shortened example so that it parses as JSON."""
    text = re.sub(r"\{…\}", "{\"%s\":true}" % ELIDED, text)
    text = re.sub(r",…\]", ",\"%s\"]" % ELIDED, text)
    text = re.sub(r",…\}", ",\"%s\":true}" % ELIDED, text)
    text = re.sub(r",…,", ",\"%s\":true," % ELIDED, text)
    text = re.sub(r"\{…,", "{\"%s\":true," % ELIDED, text)
    return text


def has_elision(node: Any) -> bool:
    if isinstance(node, dict):
        return ELIDED in node or any(has_elision(v) for v in node.values())
    if isinstance(node, list):
        return ELIDED in node or any(has_elision(v) for v in node)
    return isinstance(node, str) and "…" in node


def excused(error) -> bool:
    """An error the example's elision explains; any other error in an elided example counts."""
    node = error.instance
    if error.validator in ("required", "additionalProperties") and isinstance(node, dict) and ELIDED in node:
        return True
    if isinstance(node, str) and ("…" in node or node == ELIDED):
        return True
    if error.validator in ("minItems", "maxItems") and isinstance(node, list) and ELIDED in node:
        return True
    if error.validator in ("oneOf", "anyOf") and has_elision(node):
        # Excused only if some branch fails for elision alone.
        by_branch: Dict[Any, List] = {}
        for sub in error.context or []:
            by_branch.setdefault(sub.relative_schema_path[0] if sub.relative_schema_path else None, []).append(sub)
        return any(all(excused(sub) for sub in subs) for subs in by_branch.values())
    return False


def validate(registry: Registry, ref: str, instance: Any) -> List[str]:
    validator = Draft202012Validator({"$ref": BASE + ref}, registry=registry)
    problems = []
    for error in validator.iter_errors(instance):
        if excused(error):
            continue
        problems.append(f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message[:200]}")
    return problems


def error_codes(text: str) -> Dict[str, set]:
    codes: Dict[str, set] = {}
    for m in re.finditer(r"^\| `([a-z_]+)` \| (\d{3}) \|", text, re.M):
        codes.setdefault(m.group(1), set()).add(m.group(2))
    return codes


def main() -> int:
    spec = load_spec()
    registry = Registry().with_resource(BASE, Resource.from_contents(spec, default_specification=DRAFT202012))
    text = (ROOT / "docs" / "PROTOCOL.md").read_text()
    codes = error_codes(text)
    problems = []
    checked = 0
    for line, command, answer in examples(text):
        method, path, body, other_body = parse_curl(command)
        where = f"docs/PROTOCOL.md:{line} {method} {path.split('?')[0]}"
        joined = "".join(answer).strip()
        if not joined.startswith("{"):
            continue  # no JSON answer shown (a file written with -o, Prometheus text, CSV)
        try:
            reply = json.loads(elide(joined))
        except ValueError as e:
            problems.append(f"{where}: the answer is not JSON: {e}")
            continue
        checked += 1
        template, op = operation(spec, method, path)
        if "error" in reply:
            problems += [f"{where}: error answer: {p}" for p in validate(registry, "#/components/schemas/Error", reply)]
            code = reply["error"].get("code")
            if code not in codes:
                problems.append(f"{where}: error code {code} is not in PROTOCOL.md's table of codes")
            elif op is not None and code not in GLOBAL_CODES:
                documented = set(op.get("responses", {}))
                if not documented & codes[code] and "default" not in documented:
                    problems.append(f"{where}: {code} ({'/'.join(sorted(codes[code]))}) is not among the operation's documented responses {sorted(documented)}")
            elif op is None and code not in GLOBAL_CODES:
                problems.append(f"{where}: no operation in docs/openapi.yaml")
            continue
        if op is None:
            problems.append(f"{where}: a successful answer, but no such operation in docs/openapi.yaml")
            continue
        successes = [s for s in op["responses"] if s.startswith("2")]
        results = {s: validate(registry, pointer("paths", template, method.lower(), "responses", s, "content", "application/json", "schema"), reply)
                   for s in successes if "application/json" in op["responses"][s].get("content", {})}
        if not results:
            problems.append(f"{where}: the operation documents no JSON success answer")
        elif not any(not r for r in results.values()):
            for status, r in results.items():
                problems += [f"{where}: answer vs {status}: {p}" for p in r]
        if body is not None and not other_body:
            content = op.get("requestBody", {}).get("content", {}).get("application/json")
            if content is None:
                problems.append(f"{where}: a JSON body, but the operation takes none")
            else:
                try:
                    request = json.loads(elide(body))
                except ValueError as e:
                    problems.append(f"{where}: the request body is not JSON: {e}")
                    continue
                ref = pointer("paths", template, method.lower(), "requestBody", "content", "application/json", "schema")
                problems += [f"{where}: request: {p}" for p in validate(registry, ref, request)]
    for p in problems:
        print(p)
    print(f"docs/openapi.yaml: valid OpenAPI 3.1; docs/PROTOCOL.md: {checked} JSON examples checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
