#!/usr/bin/env python3
"""Counts the module edges between the files of emu/src/kernel.

An edge is a (file, file) pair: the first file names something in the second through a
path — a `use` declaration or a path in code (`super::mm::userfaultfd::mfill_atomic`,
`crate::kernel::uffd::UffdRef`, `mm::Vma` after `use super::mm`). Comments, strings and
doc text are ignored; `#[cfg(test)] mod tests { .. }` blocks count (they are code too).
A path is resolved to the longest prefix that is a module file, so `super::mm::Vma`
(re-exported by mm/mod.rs) is an edge to mm/mod.rs and `super::mm::vma::Vma` one to
mm/vma.rs. Paths outside emu/src/kernel (std, mmu, crate::cpu, crate::trace) are not
edges.

    tools/kernel-edges.py [--root emu/src/kernel] [--from mm] [--below errno.rs,hw.rs] [--list]

prints the number of edges, the size of the largest import circle (strongly connected
component), the edges from the files under --from (a directory of the kernel, `mm` by
default) to files outside it, how many of them go to a layer above it (anything but the
--below files), grouped by the target's top-level module, and with --list every such
edge.
"""

import argparse
import os
import re
import sys
from collections import defaultdict

KEYWORD_ROOTS = {"crate", "super", "self"}


def strip(src):
    """Source text with comments, string and char literals blanked (newlines kept)."""
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
            continue
        if src.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if src.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif src.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    if src[i] == "\n":
                        out.append("\n")
                    i += 1
            out.append(" ")
            continue
        m = re.match(r'b?r(#*)"', src[i:i + 260]) if c in "rb" and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")) else None
        if m:
            end = '"' + m.group(1)
            j = src.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append('""' + "\n" * src.count("\n", i, j))
            i = j
            continue
        if c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append('""' + "\n" * src.count("\n", i, j))
            i = j + 1
            continue
        if c == "'":
            # A char literal ('a', '\n', '\u{..}') or a lifetime ('a).
            m = re.match(r"'(\\.[^']*|[^\\'])'", src[i:i + 16])
            if m:
                out.append("' '")
                i += m.end()
                continue
        out.append(c)
        i += 1
    return "".join(out)


TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|::|[{}();,*]|\S")


def tokens(text):
    return TOKEN.findall(text)


def module_files(root):
    """Module path (tuple, relative to the kernel) -> file, and the set of module paths."""
    mods = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(d, f), root)
            parts = rel[:-3].split(os.sep)
            if parts[-1] == "mod":
                parts = parts[:-1]
            mods[tuple(parts)] = rel
    return mods


class Resolver:
    def __init__(self, mods):
        self.mods = mods

    def file_of(self, path):
        """The module file a path (absolute, under the kernel) lands in."""
        for k in range(len(path), -1, -1):
            if tuple(path[:k]) in self.mods:
                return self.mods[tuple(path[:k])], tuple(path[:k]) == tuple(path)
        return None, False

    def absolute(self, segs, here, aliases):
        """Absolute kernel path of `segs` written in module `here`, or None when outside
        the kernel or not a path to kernel items."""
        if not segs:
            return None
        first = segs[0]
        if first == "crate":
            if len(segs) < 2 or segs[1] != "kernel":
                return None
            return list(segs[2:])
        if first in ("super", "self"):
            base = list(here)
            i = 0
            while i < len(segs) and segs[i] in ("super", "self"):
                if segs[i] == "super":
                    if not base:
                        return None
                    base.pop()
                i += 1
            return base + list(segs[i:])
        if first in aliases:
            return list(aliases[first]) + list(segs[1:])
        if tuple(list(here) + [first]) in self.mods:
            return list(here) + list(segs)
        return None


def use_paths(toks, i):
    """Expands the use tree starting at toks[i]; returns (list of (segments, alias)), next i."""
    out = []

    def tree(i, prefix):
        segs = list(prefix)
        while True:
            t = toks[i]
            if t == "{":
                i += 1
                while toks[i] != "}":
                    i = tree(i, segs)
                    if toks[i] == ",":
                        i += 1
                return i + 1
            if t == "*":
                out.append((segs, None))
                return i + 1
            segs.append(t)
            i += 1
            if toks[i] == "::":
                i += 1
                continue
            alias = segs[-1]
            if toks[i] == "as":
                alias = toks[i + 1]
                i += 2
            if segs[-1] == "self":
                segs = segs[:-1]
                alias = segs[-1] if alias == "self" else alias
            out.append((segs, alias))
            return i

    i = tree(i, [])
    return out, i


def file_edges(root, rel, mods, res):
    src = strip(open(os.path.join(root, rel), encoding="utf-8").read())
    toks = tokens(src)
    parts = rel[:-3].split(os.sep)
    here = tuple(parts[:-1]) if parts[-1] == "mod" else tuple(parts)
    # Inline modules (mod tests { .. }): a stack of (module path, brace depth).
    stack = [(here, -1)]
    depth = 0
    aliases = {}
    edges = defaultdict(int)

    def add(absolute):
        if absolute is None:
            return
        f, _ = res.file_of(absolute)
        if f is not None and f != rel:
            edges[f] += 1

    i = 0
    n = len(toks)
    while i < n:
        t = toks[i]
        cur = stack[-1][0]
        if t == "{":
            depth += 1
            i += 1
            continue
        if t == "}":
            depth -= 1
            if stack[-1][1] == depth and len(stack) > 1:
                stack.pop()
            i += 1
            continue
        if t == "mod" and i + 2 < n and toks[i + 2] == "{":
            stack.append((cur + (toks[i + 1],), depth))
            depth += 1
            i += 3
            continue
        if t == "use" and (i == 0 or toks[i - 1] in (";", "}", "{", ")", "pub", "]")):
            paths, i = use_paths(toks, i + 1)
            for segs, alias in paths:
                a = res.absolute(segs, cur, aliases)
                add(a)
                if a is not None and alias and tuple(a) in mods:
                    aliases[alias] = tuple(a)
            continue
        if re.match(r"[A-Za-z_]", t) and i + 1 < n and toks[i + 1] == "::" and (i == 0 or toks[i - 1] != "::"):
            segs = [t]
            j = i + 1
            while j + 1 < n and toks[j] == "::" and re.match(r"[A-Za-z_]", toks[j + 1]):
                segs.append(toks[j + 1])
                j += 2
            add(res.absolute(segs, cur, aliases))
            i = j
            continue
        i += 1
    return edges


def largest_circle(graph):
    """The largest strongly connected component of the file graph (Tarjan)."""
    index, low, on, stack, best = {}, {}, set(), [], []
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
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
            if len(comp) > len(best):
                best[:] = comp

    for v in graph:
        if v not in index:
            visit(v)
    return sorted(best)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--root", default=os.path.join(here, "..", "emu", "src", "kernel"))
    ap.add_argument("--from", dest="frm", default="mm")
    ap.add_argument("--below", default="errno.rs,hw.rs", help="files that are not a layer above --from (comma-separated; default errno.rs,hw.rs: the errno values and the hardware state)")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    root = os.path.normpath(a.root)
    mods = module_files(root)
    res = Resolver(mods)
    graph = {rel: file_edges(root, rel, mods, res) for rel in sorted(mods.values())}
    total = sum(len(e) for e in graph.values())
    inside = lambda f: f.startswith(a.frm + os.sep)
    out = [(s, t, w) for s, es in graph.items() if inside(s) for t, w in sorted(es.items()) if not inside(t)]
    print(f"files {len(graph)}, edges {total}")
    circle = largest_circle(graph)
    print(f"largest import circle: {len(circle)} files ({sum(1 for f in circle if inside(f))} of them under {a.frm}/)")
    print(f"edges from {a.frm}/ to outside {a.frm}/: {len(out)}")
    below = set(a.below.split(",")) if a.below else set()
    up = [e for e in out if e[1] not in below]
    print(f"  of which into the layers above (not {', '.join(sorted(below))}): {len(up)}")
    by = defaultdict(int)
    for _, t, _ in out:
        top = t.split(os.sep)[0]
        top = "kernel/mod.rs" if top == "mod.rs" else top[:-3] if top.endswith(".rs") else top
        by[top] += 1
    for top, c in sorted(by.items()):
        print(f"  to {top}: {c}")
    if a.list:
        for s, t, w in out:
            print(f"  {s} -> {t}  ({w} references)")


if __name__ == "__main__":
    sys.exit(main())
