"""The README's "Reliability" table, from what the tests recorded (tests/reliability.py).

    .venv/bin/python bench/reliability.py            # print the table
    .venv/bin/python bench/reliability.py --readme   # and put it into README.md

Run the suite first (``./run tests``, or the parts you changed): each figure is written
by the test that earned it, after its assertions passed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.reliability import KINDS, RECORDS, REPO, Figure, load

BEGIN = "<!-- reliability table: bench/reliability.py --readme -->"
END = "<!-- end of reliability table -->"


def table(figures: dict[str, Figure]) -> str:
    rows = ["| kind | what | tried | data lost | broken boot configs | notes |",
            "|---|---|---:|---:|---:|---|"]
    order = {kind: n for n, kind in enumerate(KINDS)}
    for test, figure in sorted(figures.items(), key=lambda item: (order[item[1].kind],
                                                                     item[1].subject)):
        del test
        rows.append(f"| {figure.kind} | {figure.subject} | {figure.tried:,} {figure.unit} "
                    f"| {figure.lost} | {figure.broken} | {figure.note} |")
    total = sum(f.tried for f in figures.values())
    lost = sum(f.lost for f in figures.values())
    broken = sum(f.broken for f in figures.values())
    rows.append(f"| **all** | {len(figures)} tests | {total:,} | {lost} | {broken} | |")
    return "\n".join(rows)


def put_into_readme(text: str, readme: Path) -> None:
    content = readme.read_text(encoding="utf-8")
    start, end = content.find(BEGIN), content.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{readme}: no {BEGIN} ... {END} markers")
    readme.write_text(content[:start + len(BEGIN)] + "\n" + text + "\n" + content[end:],
                      encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", action="store_true", help="put the table into README.md")
    options = parser.parse_args()
    figures = load()
    if not figures:
        print(f"{RECORDS}: nothing recorded yet; run the tests first", file=sys.stderr)
        return 1
    text = table(figures)
    print(text)
    if options.readme:
        put_into_readme(text, REPO / "README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
