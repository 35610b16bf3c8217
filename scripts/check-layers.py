#!/usr/bin/env python3
"""Checks the layering rules of docs/architecture.md (run by `make lint`):

- no import cycle between the modules of one level (siblings) in src/sync and its
  subdirectories, salesforce/src and emulator/src: data flows one way;
- no module over LIMIT lines unless its header (`//!` lines) says why (`Over N lines: ...`).

Edges come from `use` trees and inline `crate::`/`super::` paths, resolved against the files
that exist. A submodule using its parent's items is not a cycle. Prints the edges with -v.
"""

import os
import re
import sys

LIMIT = 600
# (crate src dir, the module directories under it whose children must not form a cycle)
LEVELS = [
    ("src", ["sync", "sync/apply", "sync/source", "sync/push"]),
    ("salesforce/src", ["", "client", "client/bulk", "cdc"]),
    ("emulator/src", ["", "routes", "schema", "soql", "bulk"]),
]


def modules(src):
    """Module path (tuple) -> file, for every .rs file under src."""
    out = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src)
            parts = rel[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            out[tuple(parts)] = os.path.join(dirpath, f)
    return out


def strip(code):
    code = re.sub(r"//[^\n]*", "", code)
    return re.sub(r'"(\\.|[^"\\])*"', '""', code)


def expand(tree):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e]."""
    tree = tree.strip()
    m = re.match(r"^(.*?)::\{(.*)\}$", tree, re.S)
    if not m:
        return [tree.split(" as ")[0].strip()]
    head, body = m.group(1), m.group(2)
    items, depth, cur = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    items.append(cur)
    return [p for it in items if it.strip() for p in expand(head + "::" + it.strip())]


def resolve(path, here, mods):
    """The module a path names (its longest existing prefix), or None (another crate)."""
    parts = path.split("::")
    if parts[0] == "crate":
        base, rest = (), parts[1:]
    elif parts[0] in ("super", "self"):
        base = list(here)
        while parts and parts[0] in ("super", "self"):
            if parts.pop(0) == "super":
                base.pop()
        base, rest = tuple(base), parts
    else:
        return None
    best = base
    for i in range(1, len(rest) + 1):
        if base + tuple(rest[:i]) in mods:
            best = base + tuple(rest[:i])
    return best


def edges(src):
    mods = modules(src)
    out = set()
    for mod, path in mods.items():
        code = strip(open(path, encoding="utf-8").read())
        code = re.sub(r"#\[cfg\(test\)\]\s*mod tests\s*\{.*", "", code, flags=re.S)
        paths = []
        for tree in re.findall(r"\buse\s+((?:crate|super|self)::[^;]*);", code):
            paths += expand(tree)
        paths += re.findall(r"\b(?:crate|super)(?:::\w+)+", code)
        for p in paths:
            target = resolve(p, mod, mods)
            if target is not None and target != mod:
                out.add((mod, target))
    return mods, out


def cycles(nodes, es):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for a, b in es:
            if a != v:
                continue
            if b not in index:
                visit(b)
                low[v] = min(low[v], low[b])
            elif b in on:
                low[v] = min(low[v], index[b])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def main():
    verbose = "-v" in sys.argv
    failed = False
    for src, levels in LEVELS:
        mods, es = edges(src)
        for level in levels:
            root = tuple(level.split("/")) if level else ()

            def child(m):
                return m[: len(root) + 1] if m[: len(root)] == root and len(m) > len(root) else None

            level_edges = {(child(a), child(b)) for a, b in es if child(a) and child(b) and child(a) != child(b)}
            nodes = {child(m) for m in mods if child(m)}
            name = os.path.join(src, level)
            if verbose:
                for a, b in sorted(level_edges):
                    print(f"{name}: {'/'.join(a[len(root):])} -> {'/'.join(b[len(root):])}")
            for comp in cycles(nodes, level_edges):
                failed = True
                print(f"{name}: import cycle between {', '.join('/'.join(c[len(root):]) for c in comp)}")
        for mod, path in sorted(mods.items()):
            text = open(path, encoding="utf-8").read()
            lines = text.count("\n")
            header = "\n".join(l for l in text.splitlines() if l.startswith("//!"))
            if lines > LIMIT and not re.search(r"Over \d+ lines:", header):
                failed = True
                print(f"{path}: {lines} lines; split it by concern, or say why in its header ('//! Over {LIMIT} lines: ...')")
    if failed:
        sys.exit(1)
    print("layers: no import cycles, no module over %d lines without a reason" % LIMIT)


if __name__ == "__main__":
    main()
