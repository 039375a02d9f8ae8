"""Snapshot the installed distributions, or check that none was downgraded since a snapshot.

    python scripts/versions.py save BASE.json     # after the base install
    python scripts/versions.py check BASE.json    # after an extra's install: exit 1 naming each downgrade

Used by .ci/run: installing the test extras (or Ray) must never replace a package of the base install by an
older version (a pin in an extra's dependency would otherwise make the tests run against an OR-Tools or a
protobuf the user does not have).
"""

from __future__ import annotations

import json
import sys
from importlib import metadata

from packaging.version import InvalidVersion, Version


def installed() -> dict[str, str]:
    out = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name:
            out[name] = dist.version
    return out


def downgrades(before: dict[str, str], after: dict[str, str]) -> list[str]:
    bad = []
    for name, old in sorted(before.items()):
        new = after.get(name)
        if new is None:
            bad.append(f"{name} {old} was removed")
            continue
        try:
            if Version(new) < Version(old):
                bad.append(f"{name} {old} -> {new}")
        except InvalidVersion:
            if new != old:
                bad.append(f"{name} {old} -> {new} (versions not comparable)")
    return bad


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("save", "check"):
        print(__doc__, file=sys.stderr)
        return 2
    what, path = argv
    if what == "save":
        with open(path, "w") as f:
            json.dump(installed(), f, indent=1, sort_keys=True)
        return 0
    with open(path) as f:
        before = json.load(f)
    bad = downgrades(before, installed())
    if bad:
        print("versions: the install downgraded or removed packages of the base install:", file=sys.stderr)
        for line in bad:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"versions: no package of the base install ({len(before)}) was downgraded")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
