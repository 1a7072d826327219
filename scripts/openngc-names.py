#!/usr/bin/env python3
"""Writes data/names/openngc.tsv: the positions and names of the NGC, IC and Messier objects
(and OpenNGC's addendum: the Pleiades, the Hyades, the Magellanic Clouds, ...), from OpenNGC,
for the portal's name resolver (`/portal/api/resolve`). The server compiles the file in; it
never reads OpenNGC itself.

    python3 scripts/openngc-names.py OPENNGC_DIR     rewrite data/names/openngc.tsv
    python3 scripts/openngc-names.py OPENNGC_DIR --check   exit 1 when it is not current

OPENNGC_DIR holds NGC.csv.gz (or NGC.csv) and addendum.csv from
https://github.com/mattiaverga/OpenNGC (database_files/), e.g. ../shared/data/catalogs/openngc.

OpenNGC is by Mattia Verga, under CC-BY-SA-4.0: the derived file is CC-BY-SA-4.0 too, and
says so in its header.
"""

import csv
import gzip
import io
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "data" / "names" / "openngc.tsv"

HEADER = """\
# Names and positions of NGC, IC and Messier objects, derived from OpenNGC
# (https://github.com/mattiaverga/OpenNGC, database_files/NGC.csv and addendum.csv).
# Credit: OpenNGC, Mattia Verga. Licence: CC-BY-SA-4.0
# (https://creativecommons.org/licenses/by-sa/4.0/); this derived list is CC-BY-SA-4.0 too.
# Changes: only the name, the type, RA and Dec (J2000, converted to degrees) and the Messier,
# NGC/IC cross-identifications and common names of each object are kept.
# Written by scripts/openngc-names.py; do not edit.
# Columns (tab-separated): ra_deg, dec_deg, type, names (separated by |; the first is OpenNGC's)
"""

DESIGNATION = re.compile(r"^([A-Za-z]+)0*(\d+)(.*)$")


def designation(name: str) -> str:
    """'NGC0224' -> 'NGC 224', 'IC0001' -> 'IC 1', 'Mel022' -> 'Mel 22'."""
    m = DESIGNATION.match(name.strip())
    return f"{m.group(1)} {m.group(2)}{m.group(3)}" if m else name.strip()


def sexagesimal(text: str, hours: bool) -> float:
    sign = -1.0 if text.strip().startswith("-") else 1.0
    parts = [float(p) for p in text.strip().lstrip("+-").split(":")]
    while len(parts) < 3:
        parts.append(0.0)
    value = parts[0] + parts[1] / 60 + parts[2] / 3600
    return sign * value * (15.0 if hours else 1.0)


def read(path: Path) -> list[dict]:
    raw = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8")), delimiter=";"))


def render(folder: Path) -> str:
    ngc = folder / "NGC.csv.gz"
    if not ngc.exists():
        ngc = folder / "NGC.csv"
    rows = read(ngc) + read(folder / "addendum.csv")
    # Objects with a position; duplicates last, so that a name goes to the object itself
    # before the entries that repeat it.
    objects = [r for r in rows if r["RA"].strip() and r["Dec"].strip()]
    objects.sort(key=lambda r: r["Type"] == "Dup")
    taken: set[str] = set()
    lines = []
    for r in objects:
        names = [designation(r["Name"])]
        if r["M"].strip():
            names.append(f"M {int(r['M'])}")
        for cat in ("NGC", "IC"):
            for n in r[cat].split(","):
                if n.strip():
                    names.append(designation(f"{cat}{n.strip()}"))
        for n in r["Common names"].split(","):
            if n.strip():
                names.append(n.strip())
        kept = []
        for n in names:
            key = re.sub(r"\s+", "", n).lower()
            if key in taken:
                continue
            taken.add(key)
            kept.append(n)
        if not kept:
            continue
        ra = sexagesimal(r["RA"], True)
        dec = sexagesimal(r["Dec"], False)
        lines.append(f"{ra:.6f}\t{dec:.6f}\t{r['Type']}\t{'|'.join(kept)}")
    return HEADER + "\n".join(lines) + "\n"


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "--check"]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    text = render(Path(args[0]))
    if "--check" in sys.argv:
        if OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is not current: run scripts/openngc-names.py", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
