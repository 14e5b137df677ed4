"""Edits the native stack's copy of a configuration folder (Prometheus', Alertmanager's) in
place, with a YAML library (PyYAML) rather than line edits. Run by
scripts/lib/native/monitors.sh:

    render_config.py DIR [--set FILE BLOCK KEY VALUE]... [--set-existing FILE BLOCK KEY VALUE]...
                         [--addr FROM TO]... [--path FROM TO]...

  --set           KEY becomes VALUE wherever it is a key of a mapping in FILE (every level:
                  e.g. a scrape interval of a job too), and is added to the top-level mapping
                  BLOCK (created when missing) when BLOCK lacks it. FILE is relative to DIR.
  --set-existing  the same, only when KEY appears somewhere in FILE already.
  --addr          FROM (a compose host:port) becomes TO in every string (values and keys) of
                  every *.yml / *.yaml file under DIR, as a whole word (`aggregator:6066` but
                  not `my-aggregator:60661`); in *.tmpl files (Go templates, not YAML) as text.
  --path          FROM becomes TO the same way, anywhere in a string (a file path).

A YAML file that nothing changes is left byte for byte as it was; one that changes is written
back without its comments (the copy is the state folder's, read by programs only).
Prometheus' promtool and Alertmanager's amtool check the result (the caller runs them).
"""

import argparse
import os
import re
import sys

try:
    import yaml
except ImportError:
    sys.exit("error: PyYAML is required to render the native stack's configuration "
             "(apt-get install python3-yaml)")


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL expressions, descriptions) as literal blocks."""


def _str(dumper, value):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def set_everywhere(node, key, value):
    """Sets `key` to `value` in every mapping under `node` that has it; True if any had it."""
    found = False
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                node[k] = value
                found = True
            else:
                found |= set_everywhere(v, key, value)
    elif isinstance(node, list):
        for item in node:
            found |= set_everywhere(item, key, value)
    return found


def set_key(docs, block, key, value, only_existing):
    found = any(set_everywhere(doc, key, value) for doc in docs)
    if only_existing and not found:
        return
    if not docs or docs[0] is None:
        docs[:] = [{}]
    top = docs[0]
    if not isinstance(top, dict):
        sys.exit(f"error: cannot set {block}.{key}: the file is not a mapping")
    if not isinstance(top.get(block), dict):
        top[block] = {}
    top[block].setdefault(key, value)


def rewrite_strings(node, rewrite):
    """Every string of `node` (keys and values) through `rewrite`."""
    if isinstance(node, str):
        return rewrite(node)
    if isinstance(node, dict):
        return {rewrite_strings(k, rewrite): rewrite_strings(v, rewrite) for k, v in node.items()}
    if isinstance(node, list):
        return [rewrite_strings(item, rewrite) for item in node]
    return node


def make_rewrite(addrs, paths):
    rules = [(re.compile(r"\b" + re.escape(a) + r"\b"), b) for a, b in addrs]
    rules += [(re.compile(re.escape(a)), b) for a, b in paths]

    def rewrite(text):
        for pattern, replacement in rules:
            text = pattern.sub(lambda _: replacement, text)
        return text
    return rewrite


def files_under(top, suffixes):
    for folder, _, names in os.walk(top):
        for name in sorted(names):
            if name.endswith(suffixes):
                yield os.path.join(folder, name)


def render(args):
    sets = {}
    for only_existing, items in ((False, args.set), (True, args.set_existing)):
        for file, block, key, value in items:
            path = os.path.normpath(os.path.join(args.dir, file))
            sets.setdefault(path, []).append((block, key, value, only_existing))
            if not os.path.isfile(path):
                sys.exit(f"error: {path} is missing")
    rewrite = make_rewrite(args.addr, args.path)
    for path in files_under(args.dir, (".yml", ".yaml")):
        with open(path) as f:
            text = f.read()
        try:
            docs = list(yaml.safe_load_all(text))
        except yaml.YAMLError as e:
            sys.exit(f"error: {path} is not valid YAML: {e}")
        new = [rewrite_strings(doc, rewrite) for doc in docs]
        for block, key, value, only_existing in sets.get(os.path.normpath(path), []):
            set_key(new, block, key, value, only_existing)
        if new != docs:
            with open(path, "w") as f:
                f.write(f"# Rendered for the native stack by scripts/lib/render_config.py from the\n"
                        f"# repository's copy: edit that one (its comments explain it).\n")
                yaml.dump_all(new, f, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                              allow_unicode=True, width=100)
    for path in files_under(args.dir, (".tmpl",)):
        with open(path) as f:
            text = f.read()
        new = rewrite(text)
        if new != text:
            with open(path, "w") as f:
                f.write(new)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dir")
    p.add_argument("--set", nargs=4, action="append", default=[],
                   metavar=("FILE", "BLOCK", "KEY", "VALUE"))
    p.add_argument("--set-existing", nargs=4, action="append", default=[],
                   metavar=("FILE", "BLOCK", "KEY", "VALUE"))
    p.add_argument("--addr", nargs=2, action="append", default=[], metavar=("FROM", "TO"))
    p.add_argument("--path", nargs=2, action="append", default=[], metavar=("FROM", "TO"))
    render(p.parse_args())


if __name__ == "__main__":
    main()
