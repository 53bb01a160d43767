#!/usr/bin/env python3
"""Narrows the `pub` item lines of one module (a folder or a file of gateway/src) to
`pub(crate)`, then puts `pub` back, by compiler feedback, on the lines something outside the
library needs: `cargo check -p gateway --all-targets` (binary, unit tests, the e2e binary,
examples) until it passes; a private item in a public signature (`private_interfaces`) is put
back too. Then prints what the dead-code lint now sees, for a person to remove (or mark
`#[cfg(test)]` when only tests use it). Issue 21; see ARCHITECTURE.md "Visibility".

Usage: tests/tools/narrow-pub.py [--resume] gateway/src/MODULE [KEEP_REGEX ...]
KEEP_REGEX: lines matching stay `pub`: what the fuzz crate (fuzz/, its own workspace, not
built by the check) uses, e.g. 'mod (exif|srt)\b' 'fn parse\b'. --resume continues from the
state file in /tmp after a manual edit (line numbers must not have moved)."""
import json, os, re, subprocess, sys
root = subprocess.run(['git', 'rev-parse', '--show-toplevel'], capture_output=True, text=True).stdout.strip()
os.chdir(root)
resume = sys.argv[1] == '--resume'
if resume:
    sys.argv.pop(1)
target = sys.argv[1]
keep = [re.compile(k) for k in sys.argv[2:]]
state = '/tmp/arch21-pub/changed-' + target.strip('/').replace('/', '_') + '.json' 
files = []
if os.path.isdir(target):
    for d, _, fs in os.walk(target):
        files += [os.path.join(d, f) for f in fs if f.endswith('.rs')]
else:
    files = [target]
item = re.compile(r'^(\s*)pub (fn|struct|enum|trait|const|static|type|mod|use|async fn|unsafe fn)\b')
changed = set()
if resume:
    changed = set(tuple(x) for x in json.load(open(state)))
    files = []
for f in files:
    lines = open(f).read().split('\n')
    for i, l in enumerate(lines):
        if item.match(l) and not any(k.search(l) for k in keep):
            lines[i] = item.sub(lambda m: m.group(1) + 'pub(crate) ' + m.group(2), l, count=1)
            changed.add((os.path.relpath(f, root), i + 1))
    open(f, 'w').write('\n'.join(lines))
print('narrowed', len(changed))

def check():
    p = subprocess.run(['cargo', 'check', '-p', 'gateway', '--all-targets', '--message-format=json'],
                       capture_output=True, text=True)
    msgs = []
    for line in p.stdout.split('\n'):
        try:
            m = json.loads(line)
        except Exception:
            continue
        if m.get('reason') == 'compiler-message':
            msgs.append(m['message'])
    return p.returncode, msgs

def spans(msg):
    out = [msg.get('spans', [])]
    for c in msg.get('children', []):
        out.append(c.get('spans', []))
    return [s for ss in out for s in ss]

for it in range(12):
    rc, msgs = check()
    revert = set()
    for m in msgs:
        code = (m.get('code') or {}).get('code', '')
        if m['level'] == 'error' or code in ('private_interfaces', 'private_bounds'):
            for s in spans(m):
                for ln in range(s['line_start'], s['line_end'] + 1):
                    key = (s['file_name'], ln)
                    if key in changed:
                        revert.add(key)
                    else:
                        # Inside a multi-line `use a::{ ... }` that starts on a changed line.
                        for back in range(1, 8):
                            k2 = (s['file_name'], ln - back)
                            if k2 in changed:
                                text = open(k2[0]).read().split('\n')
                                block = '\n'.join(text[k2[1] - 1:ln])
                                if re.search(r'\buse\b', text[k2[1] - 1]) and '{' in text[k2[1] - 1] and '}' not in '\n'.join(text[k2[1] - 1:ln - 1]):
                                    revert.add(k2)
                                break
            # E0364/E0365: a `pub use` of an item narrowed at its definition.
            mm = re.match(r"`(\w+)` is (only public within the crate|private)", m['message'])
            if mm and code in ('E0364', 'E0365'):
                name = mm.group(1)
                pat = re.compile(r'pub\(crate\) (async fn|fn|struct|enum|trait|type|const|static|mod)\s+' + name + r'\b')
                for (f, ln) in changed:
                    if pat.search(open(f).read().split('\n')[ln - 1]):
                        revert.add((f, ln))
    if not revert:
        errs = [m for m in msgs if m['level'] == 'error']
        print('iteration', it, 'rc', rc, 'errors', len(errs))
        for m in errs[:10]:
            print(m['rendered'][:800])
        dead = [m for m in msgs if (m.get('code') or {}).get('code') in ('dead_code',)]
        print('dead_code warnings', len(dead))
        for m in dead:
            s = m['spans'][0]
            print(f"  {s['file_name']}:{s['line_start']}: {m['message']}")
        other = [m for m in msgs if m['level'] == 'warning' and (m.get('code') or {}).get('code') not in ('dead_code',)]
        for m in other[:20]:
            print('WARN', m['rendered'][:400])
        break
    for f, ln in revert:
        lines = open(f).read().split('\n')
        lines[ln - 1] = lines[ln - 1].replace('pub(crate) ', 'pub ', 1)
        open(f, 'w').write('\n'.join(lines))
        changed.discard((f, ln))
    print('iteration', it, 'reverted', len(revert), 'still narrowed', len(changed))
    json.dump(sorted(changed), open(state, 'w'))
json.dump(sorted(changed), open(state, 'w'))
