"""The shape of the code itself: rules that keep the structure the elaborator knows
recorded once, and read through one record."""
from __future__ import annotations

import re

from conftest import ROOT

PACKAGE = ROOT / "archdsl"
# splitting or counting the dots of a name: rebuilding the hierarchy from node names
DOTTED = re.compile(r"""(r?split|r?partition)\(\s*["']\.["']|\.count\(\s*["']\.["']\)"""
                    r"""|\+\s*["']\.["']\)|startswith\([^)]*\+\s*["']\.["']""")


def test_no_backend_derives_the_hierarchy_from_names():
    found = []
    for path in sorted((PACKAGE / "backends").glob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if DOTTED.search(line) and "not a name of the IR" not in line:
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "read the scope tree (ir.scope_of, ir.labels, ...):\n" + "\n".join(found)


def test_network_data_is_read_through_the_typed_record():
    found = [f"{path.relative_to(ROOT)}:{number}"
             for path in sorted(PACKAGE.rglob("*.py")) if path.name != "ir.py"
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if re.search(r"\.graph\[", line)]
    assert not found, "use ir.network(graph): " + ", ".join(found)
