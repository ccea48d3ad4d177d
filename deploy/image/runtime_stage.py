#!/usr/bin/env python3
"""Prints the runtime stage of a Dockerfile as one instruction per line, tab-separated:
INSTRUCTION<TAB>ARGUMENTS (continuation lines joined, comments dropped). The stage is the
one named by argv[2] (`FROM ... AS <name>`). Used by image-check.sh, which replays it in a
debootstrapped root."""
import re
import sys

path, stage = sys.argv[1], sys.argv[2]
lines, current = [], ""
for raw in open(path):
    line = raw.rstrip("\n")
    if line.lstrip().startswith("#") and not current:
        continue
    if line.lstrip().startswith("#"):
        continue
    if line.endswith("\\"):
        current += line[:-1] + " "
        continue
    current += line
    if current.strip():
        lines.append(current.strip())
    current = ""

inside = False
for line in lines:
    word, _, rest = line.partition(" ")
    word = word.upper()
    if word == "FROM":
        m = re.match(r"(\S+)\s+AS\s+(\S+)$", rest.strip(), re.IGNORECASE)
        inside = bool(m) and m.group(2) == stage
        if inside:
            print(f"FROM\t{m.group(1)}")
        continue
    if inside:
        print(f"{word}\t{' '.join(rest.split())}")
