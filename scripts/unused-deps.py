#!/usr/bin/env python3
"""Fails when a crate's Cargo.toml lists a dependency its sources never name.

A dependency counts as used when its crate name (dashes as underscores) appears
in any .rs file of the crate as a path (`name::`), in a `use name` or
`extern crate name`, or in a macro attribute (`#[name::…]`, `#[derive(…)]` is
covered by the path form). [dependencies] are searched in src/ (and build.rs),
[dev-dependencies] in src/, tests/, benches/ and examples/.

Usage: scripts/unused-deps.py   (from anywhere; exits 1 listing what to remove)
"""
import pathlib
import re
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def sources(crate: pathlib.Path, dirs):
    text = []
    for d in dirs:
        p = crate / d
        if p.is_file():
            text.append(p.read_text(errors="replace"))
        elif p.is_dir():
            text += [f.read_text(errors="replace") for f in sorted(p.rglob("*.rs"))]
    return "\n".join(text)


def used(name: str, text: str) -> bool:
    ident = re.escape(name.replace("-", "_"))
    return re.search(rf"(?<![\w:]){ident}(::|\s*;|\s*\{{|\s+as\s)|extern crate {ident}\b", text) is not None


def main() -> int:
    unused = []
    for manifest in sorted(ROOT.glob("crates/*/Cargo.toml")):
        crate = manifest.parent
        toml = tomllib.loads(manifest.read_text())
        ignored = set(toml.get("package", {}).get("metadata", {}).get("unused-deps", {}).get("ignore", []))
        lib = sources(crate, ["src", "build.rs"])
        every = lib + sources(crate, ["tests", "benches", "examples"])
        for table, text in (("dependencies", lib), ("dev-dependencies", every)):
            for dep, spec in toml.get(table, {}).items():
                name = spec.get("package", dep) if isinstance(spec, dict) else dep
                if dep in ignored:
                    continue
                if not used(dep, text) and not used(name, text):
                    unused.append(f"{manifest.relative_to(ROOT)}: [{table}] {dep}")
    if unused:
        print("unused dependencies (remove them, or list them under [package.metadata.unused-deps] ignore with the reason):")
        print("\n".join("  " + u for u in unused))
        return 1
    print("unused-deps: every listed dependency is used")
    return 0


if __name__ == "__main__":
    sys.exit(main())
