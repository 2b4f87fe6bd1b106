"""The Python client's linkage values equal the Swift CLI's (`anonreg linkage --batch`) for 50
random identities, Cyrillic and Latin, through the same daemon."""
import datetime
import os
import random

from conftest import anonreg

CYRILLIC = "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯіїєґў"
LATIN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZéüöäçñšžčłøß"
SEPARATORS = ["-", " ", "  ", "'", "’", "\u00a0"]


def random_name(rng: random.Random) -> str:
    letters = CYRILLIC if rng.random() < 0.6 else LATIN
    parts = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(rng.choice([1, 1, 1, 2]))]
    name = rng.choice(SEPARATORS).join(parts)
    return rng.choice(["", " "]) + name + rng.choice(["", " "])


def random_line(rng: random.Random) -> str:
    day = datetime.date(1930, 1, 1) + datetime.timedelta(days=rng.randint(0, 30000))
    date = day.isoformat() if rng.random() < 0.5 else f"{day.day}.{day.month:02d}.{day.year}"
    fields = [random_name(rng), random_name(rng)]
    if rng.random() < 0.4:
        fields.append(random_name(rng))  # a patronymic, left out by the profile
    return "|".join(fields + [date])


def test_python_and_swift_give_the_same_linkage_values(roomy_daemon):
    daemon = roomy_daemon
    seed = int(os.environ.get("ANONREG_PARITY_SEED", random.SystemRandom().randrange(1 << 32)))
    rng = random.Random(seed)
    lines = [random_line(rng) for _ in range(50)]
    assert sum(any(c in CYRILLIC for c in line) for line in lines) >= 10, f"seed {seed}"
    client = daemon.client()
    python_values = client.linkage_batch(lines)
    cli = anonreg("linkage", "--batch", stdin="\n".join(lines) + "\n", socket=daemon.socket)
    swift_values = cli.stdout.split()
    assert len(swift_values) == 50
    mismatches = [(line, p, s) for line, p, s in zip(lines, python_values, swift_values) if p != s]
    assert not mismatches, f"seed {seed}: {mismatches[:3]}"
    # The identity strings agree too (no daemon involved).
    from anonreg_client import linkage
    identities = anonreg("linkage", "--batch", "--identity-only", stdin="\n".join(lines) + "\n").stdout.splitlines()
    assert identities == [linkage.identity_from_line(line) for line in lines], f"seed {seed}"
    # And one at a time: the single form (--fields) and Client.linkage.
    family, given, *_, date = lines[0].split("|")
    single = anonreg("linkage", "--fields", lines[0], socket=daemon.socket).stdout.strip()
    assert single == client.linkage(family, given, date) == python_values[0], f"seed {seed}"
