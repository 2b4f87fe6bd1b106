#!/usr/bin/env python3
"""Writes an mdoc(7) manual page from a command's own definition and its hand-written sections.

    scripts/manpage.py BINARY SECTIONS_FILE SECTION > PAGE

The synopsis, description, every subcommand and every option come from the binary's
swift-argument-parser definition (`BINARY --experimental-dump-help`, the JSON that
swift-argument-parser's generate-manual reads too), so they cannot drift from the code. What a
command definition cannot say (FILES, ENVIRONMENT, EXIT STATUS, SEE ALSO, EXAMPLES, ...) comes
from SECTIONS_FILE, mdoc text whose first line is the page date (`.Dd Month DD, YYYY`) and
whose sections follow, each starting with `.Sh NAME`. They are placed in mdoc's conventional
order. `make man` runs this; `make man-check` (part of `make test`) regenerates every page and
fails when the committed one differs, and `mandoc -Tlint` must print nothing for it.
"""
import json
import re
import subprocess
import sys

# mdoc(7) §MANUAL STRUCTURE: the conventional order of sections.
ORDER = ["NAME", "LIBRARY", "SYNOPSIS", "DESCRIPTION", "CONTEXT", "IMPLEMENTATION NOTES", "RETURN VALUES",
         "ENVIRONMENT", "FILES", "EXIT STATUS", "EXAMPLES", "DIAGNOSTICS", "ERRORS", "SEE ALSO", "STANDARDS",
         "HISTORY", "AUTHORS", "CAVEATS", "BUGS", "SECURITY CONSIDERATIONS"]
REQUIRED = ["FILES", "EXIT STATUS", "SEE ALSO"]
# Abbreviations after which a period does not end a sentence.
ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "cf.", "vs.")


def escape(text):
    """Text for an mdoc text line: backslashes escaped, no line starting with a control character."""
    text = text.replace("\\", "\\e")
    return "\\&" + text if text.startswith((".", "'")) else text


def sentences(paragraph):
    """One sentence per line (mdoc: "new sentence, new line")."""
    words = paragraph.split()
    lines, current = [], []
    for i, word in enumerate(words):
        current.append(word)
        ends = re.search(r"[.!?][)\"']?$", word) and not word.lower().endswith(ABBREVIATIONS)
        if ends and i + 1 < len(words) and re.match(r"[A-Z(`\"]", words[i + 1]):
            lines.append(" ".join(current))
            current = []
    if current:
        lines.append(" ".join(current))
    return [escape(part) for line in lines for part in wrap(line)]


def wrap(line, width=80):
    """Input lines of at most 80 bytes (mandoc's style check), broken between words."""
    out, current = [], ""
    for word in line.split(" "):
        if current and len((current + " " + word).encode()) > width:
            out.append(current)
            current = word
        else:
            current = (current + " " + word) if current else word
    if current:
        out.append(current)
    return out


def prose(text):
    """Paragraphs (blank-line separated) as mdoc: .Pp between them, one sentence per line."""
    out = []
    for paragraph in [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]:
        if out:
            out.append(".Pp")
        out += sentences(paragraph)
    return out


def visible(arguments):
    return [a for a in arguments or [] if a.get("shouldDisplay", True)
            and a.get("preferredName", {}).get("name") not in ("help", "version", "experimental-dump-help")
            and not (a["kind"] == "flag" and a.get("preferredName", {}).get("name") == "h")]


def flag(argument):
    """`Fl -name Ar value` for an option, `Fl -name` for a flag, `Ar value` for a positional."""
    if argument["kind"] == "positional":
        return "Ar " + argument["valueName"]
    name = argument["preferredName"]
    dashes = "-" if name["kind"] == "long" else ""
    text = "Fl " + dashes + name["name"]
    if argument["kind"] == "option":
        text += " Ar " + argument["valueName"]
    return text


def synopsis_of(command):
    parts = [".Nm"]
    for argument in visible(command.get("arguments")):
        item = flag(argument) + (" ..." if argument.get("isRepeating") else "")
        parts.append((".Op " if argument.get("isOptional") else ".") + item)
    return parts


def options_list(arguments):
    out = []
    shown = visible(arguments)
    if not shown:
        return out
    out.append(".Bl -tag -width Ds")
    for argument in shown:
        out.append(".It " + flag(argument) + (" ..." if argument.get("isRepeating") else ""))
        out += prose(argument.get("abstract", "") or "(no description)")
    out.append(".El")
    return out


def subcommands(command, prefix, out):
    for sub in command.get("subcommands") or []:
        if not sub.get("shouldDisplay", True) or sub["commandName"] == "help":
            continue
        path = prefix + [sub["commandName"]]
        if sub.get("subcommands"):
            out.append(".Ss " + " ".join(path))
            out += prose(sub.get("abstract", ""))
            if sub.get("discussion"):
                out.append(".Pp")
                out += prose(sub["discussion"])
            subcommands(sub, path, out)
            continue
        out.append(".Ss " + " ".join(path))
        out.append(".Bd -ragged -offset indent")
        out += [".Nm", ".Cm " + " ".join(path[1:])]
        for argument in visible(sub.get("arguments")):
            item = flag(argument) + (" ..." if argument.get("isRepeating") else "")
            out.append((".Op " if argument.get("isOptional") else ".") + item)
        out.append(".Ed")
        out += prose(sub.get("abstract", ""))
        if sub.get("discussion"):
            out.append(".Pp")
            out += prose(sub["discussion"])
        out += options_list(sub.get("arguments"))


def read_sections(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().rstrip("\n").split("\n")
    if not lines or not lines[0].startswith(".Dd "):
        sys.exit(f"{path}: the first line must be the page date (.Dd Month DD, YYYY)")
    date, sections, current = lines[0], {}, None
    for line in lines[1:]:
        if line.startswith(".Sh "):
            current = line[4:].strip().strip('"')
            if current not in ORDER:
                sys.exit(f"{path}: section {current} is not one of mdoc's sections")
            sections[current] = []
        elif current is None:
            if line.strip() and not line.startswith('.\\"'):
                sys.exit(f"{path}: text before the first .Sh")
        else:
            sections[current].append(line)
    missing = [s for s in REQUIRED if s not in sections]
    if missing:
        sys.exit(f"{path}: missing section(s) {', '.join(missing)}")
    return date, sections


def main():
    binary, sections_file, section = sys.argv[1], sys.argv[2], sys.argv[3]
    info = json.loads(subprocess.run([binary, "--experimental-dump-help"], check=True, capture_output=True, text=True).stdout)
    command = info["command"]
    name = command["commandName"]
    date, hand = read_sections(sections_file)
    generated = {
        "NAME": [".Nm " + name, ".Nd " + escape(command["abstract"].rstrip("."))],
        "SYNOPSIS": [],
        "DESCRIPTION": prose(command.get("discussion", "")),
    }
    if any(sub["commandName"] != "help" for sub in command.get("subcommands") or []):
        generated["SYNOPSIS"] = [".Nm", ".Ar command", ".Op Ar options ...", ".Nm", ".Fl -version"]
        generated["DESCRIPTION"] += [".Pp", "Each command and its options:"]
        subcommands(command, [name], generated["DESCRIPTION"])
    else:
        generated["SYNOPSIS"] = synopsis_of(command) + [".Nm", ".Fl -version"]
        generated["DESCRIPTION"] += [".Pp", "Options:"] + options_list(command.get("arguments"))[:-1] + [
            ".It Fl -version", "Print the release and the git commit it was built from, and exit.",
            ".It Fl h , -help", "Print the usage and exit.", ".El"]
    for key in generated:
        if key in hand and key != "DESCRIPTION":
            sys.exit(f"{sections_file}: {key} is generated from the command definition; remove it")
    out = [f'.\\" Generated by scripts/manpage.py from `{name} --experimental-dump-help` and',
           f'.\\" {sections_file}. Edit those and run `make man`; never edit this file.',
           date, f".Dt {name.upper()} {section}", ".Os"]
    for key in ORDER:
        body = generated.get(key, []) + (hand.get(key, []) if key != "DESCRIPTION" or key in generated else [])
        if key == "DESCRIPTION" and key in hand:
            body = generated[key] + [".Pp"] + hand[key]
        elif key in hand and key not in generated:
            body = hand[key]
        if not body:
            continue
        out.append(".Sh " + (f'"{key}"' if " " in key else key))
        out += body
    print("\n".join(out))


if __name__ == "__main__":
    main()
