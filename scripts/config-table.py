#!/usr/bin/env python3
"""Rewrites the configuration table in README.md from the registry of settings in
crates/signoff-server/src/config/keys.rs (`key: Parser = "default",  "meaning";`).

Run after adding or changing a configuration key; a unit test fails while README.md lacks one.
"""
import pathlib
import re

root = pathlib.Path(__file__).resolve().parent.parent
src = (root / "crates/signoff-server/src/config/keys.rs").read_text()
registry = src[src.index("settings! {\n") :]
keys = re.findall(r'^\s*([a-z_]+): [^=\n]+ = "((?:[^"\\]|\\.)*)",\s*"((?:[^"\\]|\\.)*)";', registry, flags=re.M)


def show(default):
    default = default.replace('\\"', '"')
    return f"`{default}`" if default else "(none)"


rows = [f"| `SIGNOFF_{k.upper()}` | `{k}` | {show(d)} | {m.replace(chr(92) + chr(34), chr(34))} |" for k, d, m in keys]
table = "\n".join(
    ["<!-- config-table:start -->", "| variable | file key | default | meaning |", "|---|---|---|---|"]
    + rows
    + ["| `SIGNOFF_CONFIG` | | (none) | path of the TOML configuration file |", "<!-- config-table:end -->"]
)
readme = root / "README.md"
text = readme.read_text()
text = re.sub(r"<!-- config-table:start -->.*?<!-- config-table:end -->", lambda _: table, text, flags=re.S)
readme.write_text(text)
print(f"{len(keys)} keys written")
