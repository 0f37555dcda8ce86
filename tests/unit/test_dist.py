"""The release zip and manifest are what LNbits' installer expects."""

from __future__ import annotations

import hashlib
import json
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from dist import build
from lnbits.core.models.extensions import Manifest


def test_release_zip_and_manifest(tmp_path):
    archive, manifest_path = build("https://example.org/daznode", tmp_path)
    manifest = Manifest.parse_obj(json.loads(manifest_path.read_text()))
    (release,) = manifest.extensions
    assert release.id == "daznode"
    assert release.archive == f"https://example.org/daznode/{archive.name}"
    assert release.hash == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert release.is_version_compatible()
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
        # LNbits unpacks the single top-level folder into extensions/<id>.
        assert {n.split("/")[0] for n in names} == {"daznode"}
        for required in (
            "config.json",
            "__init__.py",
            "migrations.py",
            "engine/node_source.py",
            "templates/daznode/index.html",
            "static/js/index.js",
        ):
            assert f"daznode/{required}" in names
        assert not any("/.data/" in n or "/.venv/" in n for n in names)
        assert json.loads(z.read("daznode/config.json"))["id"] == "daznode"
