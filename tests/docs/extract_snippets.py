#!/usr/bin/env python3
"""Extracts the C++ code blocks of README.md and docs/*.md into .cpp files (the docs test).

usage: extract_snippets.py <repo-root> <output-dir>

The convention (docs/index.md, "Code samples"):
  ```cpp            a complete program with main(): compiled and linked against tether
  ```cpp fragment   an excerpt: shown, never compiled

Each program becomes <output-dir>/<doc>_<n>.cpp, starting with a #line directive so that a
compiler error names the Markdown file and line. A file is rewritten only when its text
changed (unchanged snippets are not recompiled). Prints the names of the programs, one a line,
for CMake. Exits 1, naming the block, when a ```cpp block has no main() or a fence is unclosed.
"""
import pathlib
import re
import sys

# Documents whose blocks are not marked yet: their unmarked blocks are treated as fragments
# (empty: every document marks its blocks).
UNMARKED: set = set()

FENCE = re.compile(r"^(```+)\s*(\S*)\s*(.*)$")


def blocks(path):
    """Yields (line of the first code line, language, info words, code) for each fenced block."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang, rest = m.group(1), m.group(2), m.group(3).split()
        start = i + 1
        j = start
        while j < len(lines) and lines[j].strip() != fence:
            j += 1
        if j == len(lines):
            sys.exit(f"{path}:{i + 1}: unclosed code fence")
        yield start + 1, lang, rest, "\n".join(lines[start:j]) + "\n"
        i = j + 1


def main():
    root = pathlib.Path(sys.argv[1])
    out = pathlib.Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    docs = [root / "README.md"] + sorted((root / "docs").glob("*.md"))
    names = []
    errors = []
    for doc in docs:
        rel = doc.relative_to(root).as_posix()
        n = 0
        for line, lang, words, code in blocks(doc):
            if lang != "cpp":
                continue
            if "fragment" in words or (rel in UNMARKED and "int main(" not in code):
                continue
            if not re.search(r"\bint\s+main\s*\(", code):
                errors.append(f"{rel}:{line}: a ```cpp block without main(); "
                              "complete it, or mark it ```cpp fragment")
                continue
            n += 1
            name = f"{doc.stem.replace('-', '_').lower()}_{n}"
            text = f'#line {line} "{rel}"\n{code}'
            target = out / f"{name}.cpp"
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                target.write_text(text, encoding="utf-8")
            names.append(name)
    # Programs of snippets that no longer exist are removed.
    for stale in out.glob("*.cpp"):
        if stale.stem not in names:
            stale.unlink()
    if errors:
        sys.exit("\n".join(errors))
    print("\n".join(names))


if __name__ == "__main__":
    main()
