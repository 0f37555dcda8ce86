"""Build a release zip and an LNbits extension manifest pointing at it.

    python scripts/dist.py --base-url https://example.org/daznode [--out dist]

LNbits installs from a manifest (Settings > Extensions > manifest URLs): each release lists
an archive URL and its sha256. The zip holds one top-level `daznode/` folder with the
committed files only (git archive), which is what LNbits unpacks into extensions/daznode.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def build(base_url: str, out: Path, ref: str = "HEAD") -> tuple[Path, Path]:
    config = json.loads((REPO / "config.json").read_text())
    version = config["version"]
    out.mkdir(parents=True, exist_ok=True)
    archive = out / f"daznode-{version}.zip"
    git = shutil.which("git") or "git"
    command = [git, "-C", str(REPO), "archive", "--format=zip", "--prefix=daznode/"]
    subprocess.run([*command, "-o", str(archive), ref], check=True)  # noqa: S603 - no shell
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    release = {
        "id": "daznode",
        "name": config["name"],
        "version": version,
        "short_description": config["short_description"],
        "icon": f"{base_url.rstrip('/')}/daznode.svg",
        "archive": f"{base_url.rstrip('/')}/{archive.name}",
        "hash": digest,
        "min_lnbits_version": config["min_lnbits_version"],
    }
    (out / "daznode.svg").write_bytes((REPO / "static/image/daznode.svg").read_bytes())
    manifest = out / "manifest.json"
    manifest.write_text(json.dumps({"repos": [], "extensions": [release]}, indent=2) + "\n")
    return archive, manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="where the files will be served")
    parser.add_argument("--out", type=Path, default=REPO / "dist")
    args = parser.parse_args()
    archive, manifest = build(args.base_url, args.out)
    print(f"{archive}\n{manifest}")


if __name__ == "__main__":
    main()
