#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora from the protocol docs (issue 8): every curl example in
docs/PROTOCOL.md becomes a fuzz-request seed, and every patient code and 64-hex element in it a
fuzz-crypto seed. The seed format is the one Sources/fuzz-*/Fuzz*.swift documents. Rerun after
changing the docs and commit fuzz/corpus; the seeds are deterministic (named by content hash)."""
import hashlib, os, re, sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
protocol = open(os.path.join(root, "docs/PROTOCOL.md"), encoding="utf-8").read()
table = open(os.path.join(root, "Sources/RegistryServer/RouteTable.swift"), encoding="utf-8").read()
routes = re.findall(r'RouteSpec\(method: \.(\w+), path: "([^"]+)"', table)
methods = ["get", "post", "put", "delete", "patch", "head", "options"]  # fuzz-request's order

def write(target, data):
    directory = os.path.join(root, "fuzz/corpus", target)
    os.makedirs(directory, exist_ok=True)
    name = hashlib.sha256(data).hexdigest()[:16]
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)

def template_of(path):
    parts = path.split("?")[0].split("/")
    for index, (method, template) in enumerate(routes):
        pattern = template.split("/")
        if len(pattern) == len(parts) and all(t.startswith("{") or t == p for t, p in zip(pattern, parts)):
            yield index, method

# Join continued shell lines, then read each curl example: method, body, path.
text = protocol.replace("\\\n", " ")
count = 0
for line in text.splitlines():
    if "curl" not in line or "http://localhost" not in line:
        continue
    body = re.search(r"(?:--json|-d|--data(?:-binary)?) '([^']*)'", line)
    method = re.search(r"-X (\w+)", line)
    path = re.search(r"http://localhost(/[^\s'\"]*)", line).group(1).replace("$CASE", "case_63e3f93b198b65b144e9454d1914d739")
    verb = (method.group(1) if method else ("POST" if body else "GET")).lower()
    payload = body.group(1).encode() if body else b""
    # Raw-target form (byte 0 bit 2), as the clinic: the path exactly as documented.
    write("request", bytes([0x04, methods.index(verb) if verb in methods else 0]) + path[1:].encode() + b"\n" + payload)
    # Route-table form for each matching entry, as clinic (0) and admin (1).
    for index, route_method in template_of(path):
        if route_method == verb:
            for roles in (0, 1):
                write("request", bytes([roles, index]) + payload)
    count += 1
for code in set(re.findall(r"\b[0-9A-Za-z]{4}[- ][0-9A-Za-z]{4}[- ][0-9A-Za-z]{4}[- ][0-9A-Za-z]{4}[- ][0-9A-Za-z]{4}[- ][0-9A-Za-z]{4}[- ][0-9A-Za-z]{3}\b", protocol)):
    write("crypto", b"\x00" + code.encode())
for element in set(re.findall(r"\b[0-9a-f]{64}\b", protocol)):
    write("crypto", b"\x01" + element.encode())
    for selector in (2, 3):
        write("crypto", bytes([selector]) + bytes.fromhex(element))
print(f"fuzz-seeds: {count} curl examples, {len(os.listdir(os.path.join(root, 'fuzz/corpus/request')))} request seeds, "
      f"{len(os.listdir(os.path.join(root, 'fuzz/corpus/crypto')))} crypto seeds", file=sys.stderr)
