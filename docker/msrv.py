#!/usr/bin/env python3
"""The oldest Rust that can build the image's binary, and whether the repository says so.

Walks `cargo metadata --locked --filter-platform T` for Linux on x86_64 and on aarch64 (the
image's platforms) from the `podium` package through normal and build dependencies (not dev
dependencies, not other workspace members' graphs), takes each package's `rust-version`
(or, when it declares none, the first release of its edition), and fails when
docker/Dockerfile's build image or the workspace's `rust-version` is older than the highest.

The resolve that `cargo metadata` reports unifies features over the whole workspace, so an
optional dependency that only another member enables may be counted: the answer can be too
high, never too low. Prints `msrv X.Y (from PACKAGE ...)` on success.
"""

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLATFORMS = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"]
# A package without rust-version still needs the compiler that introduced its edition.
EDITION_FIRST = {"2015": "1.0", "2018": "1.31", "2021": "1.56", "2024": "1.85"}


def version(text):
    return tuple(int(part) for part in text.split(".")[:2])


def graph(platform):
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--locked", "--format-version", "1",
             "--filter-platform", platform],
            cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout
    )
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    root = next(p["id"] for p in meta["packages"]
                if p["name"] == "podium" and p["id"] in meta["workspace_members"])
    seen, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        for dep in nodes[pid]["deps"]:
            if any(k["kind"] in (None, "build") for k in dep["dep_kinds"]):
                todo.append(dep["pkg"])
    return [packages[pid] for pid in seen]


def needs(package):
    return package.get("rust_version") or EDITION_FIRST[package["edition"]]


def main():
    built = {}
    for platform in PLATFORMS:
        for package in graph(platform):
            built[package["id"]] = package
    top = max(version(needs(p)) for p in built.values())
    msrv = ".".join(map(str, top))
    setters = sorted(f"{p['name']} {p['version']}" for p in built.values()
                     if version(needs(p)) == top)

    failures = []
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    tag = re.search(r"^FROM\s+rust:(\d+\.\d+)\S*\s+AS\s+build", dockerfile, re.M | re.I)
    if not tag:
        failures.append("docker/Dockerfile: no `FROM rust:X.Y... AS build` line")
    elif version(tag.group(1)) < top:
        failures.append(f"docker/Dockerfile builds with rust:{tag.group(1)}, "
                        f"older than {msrv} (needed by {', '.join(setters)})")
    declared = tomllib.loads((ROOT / "Cargo.toml").read_text())
    declared = declared.get("workspace", {}).get("package", {}).get("rust-version")
    if not declared:
        failures.append("Cargo.toml: [workspace.package] has no rust-version")
    elif version(declared) < top:
        failures.append(f"Cargo.toml says rust-version {declared}, "
                        f"but {', '.join(setters)} need {msrv}")
    for failure in failures:
        print(f"docker/msrv: {failure}", file=sys.stderr)
    if failures:
        return 1
    print(f"docker/msrv: msrv {msrv} (from {', '.join(setters)}); "
          f"{len(built)} packages; Dockerfile rust:{tag.group(1)}, rust-version {declared}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
