"""Turing-test fixtures: a small study built from real DDTI images.

Real cases are DDTI images (squashed to 128x128 PNG to keep hashing and serving fast);
"synthetic" cases are other DDTI images blurred and saved as PNG *with generation parameters in
their text metadata*, exactly like our generated PNGs, so the tests can check that readers never
receive that metadata. Descriptions and features come from the knowledge base's subtype profiles.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image, ImageFilter, PngImagePlugin

from tiger.paths import SHARED_DATA

PROFILE_ORDER = ("benign", "papillary", "follicular", "medullary")
PASSWORD = "correct horse battery"


def _ddti_images(n: int) -> list[Path]:
    files = sorted((SHARED_DATA / "ddti" / "images").glob("*.jpg"))
    if len(files) < n:
        pytest.skip(f"shared DDTI data missing at {SHARED_DATA}")
    return files[:n]


def make_case_folder(folder: Path, n_real: int = 6, n_synthetic: int = 6) -> Path:
    """Write images and a manifest.csv into folder; returns the manifest path."""
    from tiger.knowledge import SUBTYPE_PROFILES, full_prompt

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    sources = _ddti_images(n_real + n_synthetic)
    for i, src in enumerate(sources):
        synthetic = i >= n_real
        profile = PROFILE_ORDER[i % len(PROFILE_ORDER)]
        chips = dict(SUBTYPE_PROFILES[profile])
        im = Image.open(src).convert("L").resize((128, 128))
        name = f"case_{i:03d}.png"
        info = PngImagePlugin.PngInfo()
        if synthetic:
            im = im.filter(ImageFilter.GaussianBlur(1.5))
            info.add_text("tiger", json.dumps({"truth": "synthetic", "seed": i, "chips": chips}))
        im.save(folder / name, pnginfo=info)
        features = {g: v for g, v in chips.items() if g not in ("malignancy", "subtype")}
        rows.append({"image": name, "truth": "synthetic" if synthetic else "real",
                     "method": ("tiger" if i % 2 else "coarse") if synthetic else "real",
                     "subtype": profile, "description": full_prompt(chips), "features": json.dumps(features)})
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return manifest


@pytest.fixture(scope="session")
def turing_manifest(tmp_path_factory) -> Path:
    return make_case_folder(tmp_path_factory.mktemp("turing_cases"))


@pytest.fixture
def turing_store(tmp_path):
    from turing_test.storage import open_store

    return open_store(None, data_dir=tmp_path / "data")


@pytest.fixture
def turing_study(turing_store, turing_manifest):
    """(store, study_id, readers): admin 'ada', junior 'jun', senior 'sen', both enrolled."""
    from turing_test.manifest import load_manifest

    store = turing_store
    store.create_reader("ada", PASSWORD, role="admin", years_experience=20)
    store.create_reader("jun", PASSWORD, role="junior", years_experience=2)
    store.create_reader("sen", PASSWORD, role="senior", years_experience=15)
    study_id = store.create_study("pilot", load_manifest(turing_manifest), protocols=[1, 2, 3], seed=7,
                                  readers=["jun", "sen"])
    readers = {u: store.reader_by_username(u) for u in ("ada", "jun", "sen")}
    return store, study_id, readers


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server on 127.0.0.1 (trust auth), started for this test session.

    As root, initdb/postgres must run as another user: the `postgres` account Debian's package
    creates (or `nobody`). Yields a function `new_database() -> SQLAlchemy URL`.
    """
    import os
    import pwd
    import shutil
    import subprocess

    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL binaries not installed (scripts/system_deps.sh installs Debian's postgresql)")
    prefix: list[str] = []
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        user = next((u for u in ("postgres", "nobody") if _has_user(u)), None)
        if user is None or shutil.which("runuser") is None:
            pytest.skip("running as root without a postgres/nobody account to run the server")
        owner = pwd.getpwnam(user)
        prefix = ["runuser", "-u", user, "--"]
    root = server_home(owner)
    data = root / "data"
    from tests.servers import free_port

    port = free_port()
    subprocess.run(prefix + [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                             "-E", "UTF8", "--no-sync"], check=True, capture_output=True, cwd=root)
    log = root / "server.log"
    subprocess.run(prefix + [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
                             f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c max_connections=200", "start"],
                   check=True, capture_output=True, cwd=root)
    counter = iter(range(1000))

    def new_database() -> str:
        import psycopg

        name = f"tiger_{next(counter)}"
        with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://postgres@127.0.0.1:{port}/{name}"

    yield new_database
    subprocess.run(prefix + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True,
                   cwd=root)
    shutil.rmtree(root, ignore_errors=True)


def _reachable_by(folder: Path, uid: int) -> bool:
    """True when every folder from / down to folder lets uid through (owner or world-executable).

    A checkout under a mode-700 home or `mktemp -d` folder fails this for any user but root, which
    is why the server's files cannot live under the checkout (or pytest's root-private tmp_path).
    """
    folder = folder.resolve()
    for part in (folder, *folder.parents):
        st = part.stat()
        if st.st_uid != uid and not st.st_mode & 0o001:
            return False
    return True


def server_home(owner: "pwd.struct_passwd | None") -> Path:
    """A fresh temporary folder owned by the account a test server runs as.

    The folder sits in the system temporary folder (TMPDIR, else /tmp, /var/tmp: the first the
    account can reach), never under the checkout, so the tests pass whatever the checkout's
    permissions. owner None means the server runs as us: any temporary folder will do.
    """
    import os
    import tempfile

    if owner is None:
        return Path(tempfile.mkdtemp(prefix="tiger-pg-"))
    for base in dict.fromkeys((tempfile.gettempdir(), "/tmp", "/var/tmp")):
        if Path(base).is_dir() and _reachable_by(Path(base), owner.pw_uid):
            root = Path(tempfile.mkdtemp(prefix="tiger-pg-", dir=base))
            os.chown(root, owner.pw_uid, owner.pw_gid)
            return root
    pytest.skip(f"no temporary folder that user {owner.pw_name} can reach (TMPDIR, /tmp, /var/tmp)")


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
