#!/usr/bin/env python3
"""The layout rules the code keeps (README, "How it is built"), checked from the sources and
`swift package dump-package`:

- no Swift file under Sources/ is over 500 lines;
- pointer code (`Unsafe`) appears only in the named kernels, at most 8 files (the fuzz
  harness aside);
- every module a target imports from this package or its dependencies is declared by that
  target in Package.swift (not reached through another target's dependencies);
- no library product is built with unsafe flags (SwiftPM refuses such a product as a
  versioned dependency).

Prints one line per broken rule and exits 1; prints a one-line summary and exits 0 when all
hold.
"""
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_LINES = 500
MAX_UNSAFE_FILES = 8
KERNELS = {
    "Sources/PcapSource/PcapSource.swift",
    "Sources/PcapSource/MappedRecords.swift",
    "Sources/PcapSource/PcapngRecords.swift",
    "Sources/SMTPCapCore/ByteKernels.swift",
    "Sources/Reporting/ByteSink.swift",
    "Sources/Reporting/Escaping.swift",
    "Sources/SMTPCapEngine/System.swift",
    "Sources/TCPReassembly/FlowIndex.swift",
}
EXEMPT_FROM_UNSAFE = "Sources/smtpcap-fuzz/"
# Modules of the toolchain and the system: not declared as package dependencies.
SYSTEM_MODULES = {"Glibc", "Darwin", "Foundation", "FoundationEssentials", "Dispatch", "Synchronization",
                  "Testing", "XCTest", "Musl", "_Concurrency"}


def swift_files(folder):
    for base, _, names in os.walk(folder):
        for name in sorted(names):
            if name.endswith(".swift"):
                yield os.path.join(base, name)


def main():
    problems = []
    os.chdir(ROOT)

    sources = sorted(swift_files("Sources"))
    for path in sources:
        with open(path, encoding="utf-8") as f:
            n = sum(1 for _ in f)
        if n > MAX_LINES:
            problems.append(f"{path}: {n} lines (at most {MAX_LINES})")

    unsafe = []
    for path in sources:
        if path.startswith(EXEMPT_FROM_UNSAFE):
            continue
        with open(path, encoding="utf-8") as f:
            if "Unsafe" in f.read():
                unsafe.append(path)
    for path in unsafe:
        if path not in KERNELS:
            problems.append(f"{path}: pointer code outside the named kernels (.ci/check-layout.py KERNELS)")
    if len(unsafe) > MAX_UNSAFE_FILES:
        problems.append(f"{len(unsafe)} files with pointer code (at most {MAX_UNSAFE_FILES})")

    dump = json.loads(subprocess.run(["swift", "package", "dump-package"], check=True,
                                     capture_output=True, text=True).stdout)
    targets = {t["name"]: t for t in dump["targets"]}
    # Module names a target may import: the package's own targets and its dependencies'
    # product modules (a product's name is its module's here).
    own = set(targets)
    for name, t in targets.items():
        declared = set()
        for d in t.get("dependencies", []):
            for kind in ("byName", "target", "product"):
                if kind in d:
                    declared.add(d[kind][0])
        folder = t.get("path") or os.path.join("Tests" if t["type"] == "test" else "Sources", name)
        if t["type"] == "system":
            continue
        for path in swift_files(folder):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    m = re.match(r"(?:@testable\s+)?import\s+(\w+)", line)
                    if not m:
                        continue
                    module = m.group(1)
                    if module in SYSTEM_MODULES or module == name:
                        continue
                    if module not in declared:
                        where = "a target of this package" if module in own else "a dependency's module"
                        problems.append(f"{path}: imports {module} ({where}) that target {name} does not declare")

    unsafe_targets = {n for n, t in targets.items()
                      if any(s.get("kind", {}).get("unsafeFlags") for s in t.get("settings", []))}
    for p in dump.get("products", []):
        if "library" in p.get("type", {}):
            bad = [t for t in p.get("targets", []) if t in unsafe_targets]
            if bad:
                problems.append(f"library product {p['name']} has targets with unsafe flags: {', '.join(bad)}")

    for p in problems:
        print(f"check-layout: {p}")
    if problems:
        return 1
    print(f"check-layout: ok ({len(sources)} source files, largest within {MAX_LINES} lines; "
          f"pointer code in {len(unsafe)} kernel files; imports declared by {len(targets)} targets)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
