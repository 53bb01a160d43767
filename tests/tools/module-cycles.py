#!/usr/bin/env python3
"""Module cycles between the top-level modules of a crate (`gateway/src` by default).

Usage: python3 tests/tools/module-cycles.py [SRC_DIR] [--edges]

An edge A -> B means some file of top-level module A names `crate::B` (in a `use`, a path,
or a `use crate::{B, ...}` group), outside comments and outside `#[cfg(test)]` modules (inline
ones, and files declared with `#[cfg(test)] mod name;`: test code may load the whole config).
Prints each strongly connected component of more than one module (a cycle), with the
edges inside it and the first file that makes each edge. Exit status 1 when there is a cycle,
so CI or a reviewer can run it as a check.
"""

import os
import re
import sys
from collections import defaultdict


def strip(text):
    """Code without comments and without the `#[cfg(test)] mod ... { }` blocks."""
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def names_used(code):
    """Top-level module names reached through `crate::`."""
    found = set(re.findall(r"\bcrate::(\w+)", code))
    for group in re.findall(r"\bcrate::\{([^;]*?)\}\s*;", code, flags=re.S):
        depth, name = 0, ""
        for ch in group + ",":
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                head = re.match(r"\s*(\w+)", name)
                if head:
                    found.add(head.group(1))
                name = ""
                continue
            name += ch
    return found


def test_files(path, text):
    """Files of the `#[cfg(test)] mod name;` declarations in `path` (their whole subtree)."""
    base = os.path.dirname(path)
    stem = os.path.basename(path)[:-3]
    here = base if stem in ("mod", "lib", "main") else os.path.join(base, stem)
    out = []
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text):
        out.append(os.path.join(here, m.group(1) + ".rs"))
        out.append(os.path.join(here, m.group(1)) + os.sep)
    return out


def top_of(src, path):
    rel = os.path.relpath(path, src)
    first = rel.split(os.sep)[0]
    return first[:-3] if first.endswith(".rs") else first


def sccs(graph):
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    src = args[0] if args else "gateway/src"
    tops = set()
    for name in os.listdir(src):
        if name.endswith(".rs"):
            tops.add(name[:-3])
        elif os.path.isdir(os.path.join(src, name)):
            tops.add(name)
    tops -= {"lib", "main"}
    graph, why, texts, skip = defaultdict(set), {}, {}, []
    for root, _, files in os.walk(src):
        for f in sorted(files):
            if f.endswith(".rs"):
                path = os.path.join(root, f)
                with open(path, encoding="utf-8") as fh:
                    texts[path] = fh.read()
                skip += test_files(path, texts[path])
    for path in sorted(texts):
        if any(path == s or (s.endswith(os.sep) and path.startswith(s)) for s in skip):
            continue
        a = top_of(src, path)
        if a not in tops:
            continue
        graph[a]
        for b in sorted(names_used(strip(texts[path])) & tops - {a}):
            graph[a].add(b)
            why.setdefault((a, b), os.path.relpath(path, src))
    cycles = [c for c in sccs(graph) if len(c) > 1]
    if "--edges" in sys.argv:
        for a in sorted(graph):
            print(f"{a} -> {', '.join(sorted(graph[a]))}")
    if not cycles:
        print("no cycles between top-level modules")
        return 0
    for c in cycles:
        print(f"cycle of {len(c)}: {' '.join(c)}")
        for a in c:
            for b in sorted(graph[a] & set(c)):
                print(f"  {a} -> {b}   ({why[(a, b)]})")
    return 1


if __name__ == "__main__":
    sys.exit(main())
