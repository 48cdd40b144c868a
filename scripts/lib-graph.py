#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The dependency graph of lib/: #include edges between its files and calls
from one .c file into functions (and inline helpers) defined in another.
Prints the edges (-v), every cycle (strongly connected set of files), and
fails unless the only cycles are the inherent ones listed in INHERENT below.
Run by `make check` (check-layers).
Usage: scripts/lib-graph.py [-v]"""
import glob, os, re, sys

os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
files = sorted(glob.glob('lib/*.c') + glob.glob('lib/*.h'))
text = {f: open(f).read() for f in files}
# Strip comments and strings so that prose does not count as a call.
code = {f: re.sub(r'/\*.*?\*/|//[^\n]*|"(\\.|[^"\\])*"', ' ', t, flags=re.S)
        for f, t in text.items()}

def bodies(t):
    """What can call: function bodies and macro definitions, not the
    prototypes at file scope."""
    out, depth = [], 0
    for line in t.split('\n'):
        if line.startswith('#define'):
            out.append(line)
            continue
        if depth > 0:
            out.append(line)
        depth += line.count('{') - line.count('}')
    return '\n'.join(out)

defs = {}  # function name -> file that defines it
for f, t in code.items():
    for m in re.finditer(r'^(?:static inline |RCTX_API |static )?[\w \*]+?\b(\w+)\([^;{]*\)\s*\{',
                         t, re.M):
        name = m.group(1)
        if name.startswith('__'):
            continue  # an attribute on the line before the name
        if f.endswith('.c') and re.search(r'^static [^\n]*\b%s\(' % name, t, re.M):
            continue  # file-local
        defs.setdefault(name, f)
for f, t in code.items():  # macros of headers count as their definitions
    if f.endswith('.h'):
        for m in re.finditer(r'^#define (\w+)', t, re.M):
            defs.setdefault(m.group(1), f)

edges = {f: set() for f in files}
for f, t in code.items():
    for m in re.finditer(r'^#include "(\w+\.h)"', text[f], re.M):
        h = 'lib/' + m.group(1)
        if h in edges:
            edges[f].add(h)
    for name in set(re.findall(r'\b(\w+)\s*\(', bodies(t))):
        g = defs.get(name)
        if g and g != f:
            edges[f].add(g)

# A header and the .c that implements it are one unit.
def unit(f):
    base = f[:-2]
    if f.endswith('.h') and base + '.c' in edges:
        return base + '.c'
    return f

graph = {}
for f, outs in edges.items():
    u = unit(f)
    graph.setdefault(u, set()).update(unit(g) for g in outs if unit(g) != u)

# internal.h only gathers declarations: calls resolve to their definitions.
if '-v' in sys.argv:
    for u in sorted(graph):
        print('%-18s -> %s' % (u, ' '.join(sorted(graph[u]))))

def find_sccs(graph):
  index, low, stack, on, sccs, n = {}, {}, [], set(), [], [0]
  def visit(v):
      index[v] = low[v] = n[0]; n[0] += 1
      stack.append(v); on.add(v)
      for w in graph.get(v, ()):
          if w not in index:
              visit(w); low[v] = min(low[v], low[w])
          elif w in on:
              low[v] = min(low[v], index[w])
      if low[v] == index[v]:
          comp = []
          while True:
              w = stack.pop(); on.discard(w); comp.append(w)
              if w == v:
                  break
          if len(comp) > 1:
              sccs.append(sorted(comp))
  for v in sorted(graph):
      if v not in index:
          visit(v)
  return sccs

sccs = find_sccs(graph)
leaf = set()
while True:
    more = {u for u in graph if u not in leaf and graph[u] <= leaf}
    if not more:
        break
    leaf |= more
print('below the tree (depend only on each other):', ' '.join(sorted(leaf)))
print('cycles:' if sccs else 'cycles: none')
for c in sccs:
    print('  ' + ' '.join(c) + ', through:')
    for a in c:
        for b in sorted(graph[a] & set(c)):
            calls = sorted(n for n in set(re.findall(r'\b(\w+)\s*\(', bodies(code[a])))
                           if unit(defs.get(n, '')) == b)
            print('    %s -> %s: %s' % (a, b, ' '.join(calls)))

# The inherent cycles, as the edges that close them: each goes back up into
# the tree, and nothing else may loop. Without these edges lib/ must be
# acyclic; an edge listed here that the code no longer has must go too.
# (docs/design.md, "Layering", keeps the same list.)
INHERENT = {
    ('lib/ring.c', 'lib/context.c'):
        'a request holds a reference on its governing context (rctx__obj_get/put)',
    ('lib/runtime.c', 'lib/context.c'):
        'deadline timers expire into the tree (rctx__timer_expired); queued ones hold references',
    ('lib/keeper.c', 'lib/context.c'):
        'a kept request holds references on its contexts until it ends (rctx__ref/rctx__unref)',
}
rest = {u: outs - {b for (a, b) in INHERENT if a == u} for u, outs in graph.items()}
left = find_sccs(rest)
stale = sorted('%s -> %s' % e for e in INHERENT if e[1] not in graph.get(e[0], ()))
print('cycles without the inherent edges:', 'none' if not left else
      '; '.join(' '.join(c) for c in left))
for c in left:
    print('  a new cycle: break it, or list the edge that closes it in INHERENT '
          '(scripts/lib-graph.py) and docs/design.md with the reason')
for e in stale:
    print('inherent edge no longer in the code: %s (remove it from INHERENT and '
          'docs/design.md)' % e)
if left or stale:
    sys.exit(1)
print('layers: no cycle in lib/ but the %d inherent edges into the tree' % len(INHERENT))
