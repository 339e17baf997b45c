#!/usr/bin/env python3
"""Keep README.md's example code identical to the example files that the tests run.

A README block is tied to a file by a marker line just before its code fence:

    <!-- example: examples/c/quickstart.c -->
    ```c
    ...file contents...
    ```

`--check` (used by scripts/test.sh) fails if any tied block differs from its file;
`--write` rewrites the blocks from the files.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCK = re.compile(r"(<!-- example: (?P<path>[^ ]+) -->\n```(?P<lang>\w*)\n)(?P<body>.*?)(```)", re.S)


def main(mode: str) -> int:
    text = README.read_text()
    stale = []

    def replace(m: re.Match) -> str:
        path = ROOT / m.group("path")
        if not path.is_file():
            stale.append(f"{m.group('path')}: file missing")
            return m.group(0)
        body = path.read_text()
        if not body.endswith("\n"):
            body += "\n"
        if body != m.group("body"):
            stale.append(m.group("path"))
        return m.group(1) + body + m.group(5)

    new = BLOCK.sub(replace, text)
    count = len(BLOCK.findall(text))
    if mode == "--write":
        README.write_text(new)
        print(f"README.md: {count} example blocks written")
        return 0
    if stale:
        print("README.md example blocks differ from their files (run scripts/readme_examples.py --write):")
        for s in stale:
            print("  " + s)
        return 1
    print(f"README.md: {count} example blocks match their files")
    return 0 if count > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "--check"))
