#!/usr/bin/env python3
"""Installs the node_modules a package-lock.json (lockfileVersion 2 or 3)
describes, without npm: each package's tarball comes from the npm registry
(NPM_REGISTRY, default https://registry.npmjs.org), is checked against the
lock file's sha512 integrity and unpacked where the lock file puts it.

    scripts/npm-modules.py DIR      (DIR holds package-lock.json)

For pure-JavaScript test tools only: no install scripts are run and no
binaries linked. A package already there at the locked version is kept.
Debian 12's nodejs has no npm, and Debian's npm package pulls in some 400
others; this needs python3 alone."""
import base64
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import urllib.request


def tarball_url(registry, name, version):
    base = name.rsplit("/", 1)[-1]  # @scope/pkg -> pkg
    return f"{registry}/{name}/-/{base}-{version}.tgz"


def installed_version(path):
    try:
        with open(os.path.join(path, "package.json"), encoding="utf-8") as f:
            return json.load(f).get("version")
    except (OSError, ValueError):
        return None


def unpack(data, dest):
    tmp = dest + ".part"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for m in tar.getmembers():
            # the tarball's top folder is "package/" (sometimes another name): strip it
            parts = m.name.split("/", 1)
            if len(parts) < 2 or not parts[1] or m.issym() or m.islnk() or ".." in parts[1].split("/"):
                continue
            if not (m.isfile() or m.isdir()):
                continue
            m.name = parts[1]
            m.mode = 0o755 if m.isdir() or m.mode & 0o111 else 0o644
            tar.extract(m, tmp)
    shutil.rmtree(dest, ignore_errors=True)
    os.rename(tmp, dest)


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    root = os.path.abspath(sys.argv[1])
    registry = os.environ.get("NPM_REGISTRY", "https://registry.npmjs.org").rstrip("/")
    with open(os.path.join(root, "package-lock.json"), encoding="utf-8") as f:
        lock = json.load(f)
    packages = lock.get("packages")
    if not isinstance(packages, dict):
        print("npm-modules: package-lock.json has no 'packages' (lockfileVersion 2 or 3 needed)", file=sys.stderr)
        return 1
    fetched = 0
    # parents before the packages nested in them
    for key in sorted(k for k in packages if k.startswith("node_modules/")):
        meta = packages[key]
        if meta.get("link") or (meta.get("dev") and os.environ.get("NPM_MODULES_OMIT_DEV")):
            continue
        name = key.rsplit("node_modules/", 1)[-1]
        version, integrity = meta.get("version"), meta.get("integrity", "")
        dest = os.path.join(root, key)
        if installed_version(dest) == version:
            continue
        if not version or not integrity.startswith("sha512-"):
            print(f"npm-modules: {key}: no version or sha512 integrity in the lock file", file=sys.stderr)
            return 1
        url = meta.get("resolved") or tarball_url(registry, name, version)
        try:
            with urllib.request.urlopen(url, timeout=60) as r:
                data = r.read()
        except OSError as e:
            print(f"npm-modules: {url}: {e}", file=sys.stderr)
            return 1
        want = base64.b64decode(integrity[len("sha512-"):])
        if hashlib.sha512(data).digest() != want:
            print(f"npm-modules: {url}: sha512 does not match the lock file", file=sys.stderr)
            return 1
        unpack(data, dest)
        fetched += 1
    if fetched:
        print(f"npm-modules: installed {fetched} packages into {os.path.join(root, 'node_modules')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
