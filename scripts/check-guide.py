#!/usr/bin/env python3
"""Every anonreg, anonreg-clinic and anonregd command line the documentation shows exists (issue 22 §6).

    scripts/check-guide.py BIN_DIR [FILE ...]

The guide once described a "rotate offline" that no command has, and named a passphrase option
that anonregd lacks. This check reads the command tree of the built binaries
(`--experimental-dump-help`, the JSON swift-argument-parser's own generate-manual reads) and
every command line in the documents: fenced code blocks, `inline code` and the Exec lines of
the shipped units. For each `anonreg ...` or `anonregd ...` it walks the subcommands and
checks that

- every subcommand named exists (`keys backup|restore` names two, both must exist);
- every `--option` and `-x` belongs to the command it is given to (or is --help/--version);
- no stray word follows a command that takes no argument (`anonreg keys rotate offline`).

Placeholders (FILE, DIR, `...`) stand for arguments and values and are not judged. The
default files are README.md, CONTRIBUTING.md, docs/*.md, keys/README.md, the hand-written man
page sections and the systemd and ssh units. Part of `make test`; exits 1 with one line per
problem.
"""
import glob
import json
import os
import re
import shlex
import subprocess
import sys

# `anonreg`, `anonreg-clinic` or `anonregd` as a command word: alone or at the end of a path,
# not part of a longer name (anonreg.toml, anonreg-clinic-forward, anonreg:anonreg-clinic,
# anonreg's).
COMMAND = re.compile(r"(?:(?<=[\s`(=;|&])|^)((?:[\w.$/{}-]*/)?(anonreg(?:d|-clinic)?))(?![\w.:/'’-])")
# What may come before the command at the start of an inline span: VAR=value assignments.
LEADING = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*")
# Tokens after which `anonreg` is a user or group name, not the command.
USER_OPTIONS = {"-u", "-o", "-g", "--user", "--group", "--reuid", "--regid", "--uid", "--gid", "usermod", "-aG",
                "-G", "useradd", "userdel", "groupadd", "chown", "chgrp", "id", "su", "getent", "passwd", "group"}
SHELL_END = {"|", "||", "&&", ";", "&", ">", ">>", "<", "2>", "2>&1", "#", ")", "\\"}
GLOBAL_FLAGS = {"--help", "-h", "--version"}


def command_tree(binary):
    out = subprocess.run([binary, "--experimental-dump-help"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["command"]


def describe(command):
    """options: name -> takes a value; positional: how many positional arguments it has."""
    options, positional = {}, 0
    for argument in command.get("arguments", []):
        if argument["kind"] == "positional":
            positional += 1
            continue
        for name in argument.get("names", []):
            prefix = "--" if name["kind"] == "long" else "-"
            options[prefix + name["name"]] = argument["kind"] == "option"
    return options, positional


def snippets(path):
    """(line number, text, whole) of every command-bearing piece of the file: each line of a
    fenced code block (continuation lines joined) and each Exec line of a unit, checked
    wherever the command appears in it (`runuser -u north -- anonreg enrol`); and each
    `inline code` span of the prose, checked only when it starts with the command (prose also
    quotes messages such as `migrated by anonreg 0.2.0`)."""
    text = open(path, encoding="utf-8").read()
    lines = text.split("\n")
    if path.endswith((".service", ".timer", ".socket", ".conf")):
        for number, line in enumerate(lines, 1):
            if re.match(r"^\s*Exec\w*=", line):
                yield number, line.split("=", 1)[1].lstrip("-@+!:"), True
        return
    in_block = False
    joined, start = "", None
    paragraph, first = [], None

    def spans():
        body = "\n".join(paragraph)
        for match in re.finditer(r"`([^`]+)`", body):
            yield first + body.count("\n", 0, match.start()), match.group(1).replace("\n", " "), False

    for number, line in enumerate(lines, 1):
        if line.lstrip().startswith("```"):
            yield from spans()
            paragraph, first = [], None
            in_block = not in_block
            continue
        if in_block:
            if start is None:
                start = number
            if line.rstrip().endswith("\\"):
                joined += line.rstrip()[:-1] + " "
                continue
            yield start, joined + line, True
            joined, start = "", None
            continue
        if not line.strip():
            yield from spans()
            paragraph, first = [], None
            continue
        if first is None:
            first = number
        paragraph.append(line.strip())
    yield from spans()


def tokens_after(text, end):
    """The words after a command word, up to the end of that shell command."""
    rest = text[end:]
    rest = re.split(r"\s#|\$\(|`", rest, maxsplit=1)[0]
    try:
        words = shlex.split(rest, posix=True)
    except ValueError:
        words = rest.split()
    out = []
    for word in words:
        if word in SHELL_END or word.startswith(("|", ";", "&", ">", "<", "2>", ")", "(")):
            break
        if word.endswith((";", ")")):
            out.append(word[:-1])
            break
        out.append(word)
    return out


def check_line(trees, where, text, whole, problems):
    if whole:
        text = re.split(r"(?:^|\s)#", text, maxsplit=1)[0]  # a shell comment
    for match in COMMAND.finditer(text):
        if not whole and match.start(1) != LEADING.match(text).end():
            continue
        directory = match.group(1)[: -len(match.group(2))].rstrip("/")
        if directory and not re.search(r"(^|/)(bin|debug|release)$|^\$\{?\w+\}?$", directory):
            continue  # a path such as /var/lib/anonreg, not the binary
        name = match.group(2)
        before = text[: match.start()].split()
        if before and (before[-1] in USER_OPTIONS or before[-1].endswith(("=", ":")) or before[-1].startswith("--reuid")):
            continue
        if before and before[-1] in ("systemctl", "journalctl", "-u", "pkill", "pgrep", "killall"):
            continue
        words = tokens_after(text, match.end())
        problem = walk(trees[name], name, words)
        if problem:
            problems.append(f"{where}: `{name} {' '.join(words)}`: {problem}")


def walk(command, path, words):
    subcommands = {c["commandName"]: c for c in command.get("subcommands", [])}
    options, positional = describe(command)
    i = 0
    while i < len(words):
        word = words[i].strip("[]{}\"'")
        if word in ("", "...", "…", "--"):
            i += 1
            continue
        if word.startswith("-") and not re.fullmatch(r"-\d+", word):
            flag = word.split("=", 1)[0]
            if flag in GLOBAL_FLAGS:
                i += 1
                continue
            if flag not in options:
                return f"{path} has no option {flag}"
            if options[flag] and "=" not in word:
                i += 1  # its value
            i += 1
            continue
        if subcommands:
            # `keys backup|restore` in a synopsis, `audit verify/export` in a table.
            alternatives = re.split(r"[|/]", word)
            missing = [a for a in alternatives if a not in subcommands]
            if missing:
                if positional:
                    return None
                return f"{path} has no subcommand {missing[0]} (it has {', '.join(sorted(subcommands))})"
            if len(alternatives) > 1:
                for alternative in alternatives:
                    problem = walk(subcommands[alternative], f"{path} {alternative}", words[i + 1:])
                    if problem:
                        return problem
                return None
            return walk(subcommands[word], f"{path} {word}", words[i + 1:])
        if not positional:
            return f"{path} takes no argument, but `{word}` follows it"
        i += 1
    return None


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    bin_dir = sys.argv[1]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.chdir(root)
    files = sys.argv[2:] or sorted(
        ["README.md", "CONTRIBUTING.md", "keys/README.md"] + glob.glob("docs/*.md") + glob.glob("docs/man/*.sections")
        + glob.glob("systemd/*.service") + glob.glob("systemd/*.timer") + glob.glob("ssh/*.service"))
    trees = {name: command_tree(os.path.join(bin_dir, name)) for name in ("anonreg", "anonreg-clinic", "anonregd")}
    problems, seen = [], 0
    for path in files:
        for number, text, whole in snippets(path):
            before = len(problems)
            check_line(trees, f"{path}:{number}", text, whole, problems)
            seen += 1 if COMMAND.search(text) else 0
            del before
    problems = sorted(set(problems))
    for problem in problems:
        print("guide: " + problem)
    print(f"guide: {seen} command lines in {len(files)} files checked against the built commands; "
          f"{len(problems)} problem(s)")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
