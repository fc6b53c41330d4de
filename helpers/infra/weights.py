"""Trained weights to start from: pack every model of the weight cache into one archive, and
unpack an archive (a file or a URL) into the cache, so that the next run reloads instead of
training.

    python -m helpers.infra.weights pack [--out FILE]      (or: make weights)
    python -m helpers.infra.weights unpack FILE_OR_URL     (make run WEIGHTS=...)

The archive holds data/models/ (weights, histories and the key record of each) and
data/runs/ (checkpointed trainings such as the GAN's), with ``manifest.json``: the SHA-256
and size of each file, the TensorFlow and Keras versions, the commit, and for each model the
key it was stored under with the fingerprint of each training-code module that went into
that key. Unpacking checks every hash, refuses an archive whose models were trained by other
code (naming them and the modules that differ), and never replaces a file already in the
cache. Used by the Makefile; nothing in the notebooks calls it.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from helpers.infra.config import REPO_ROOT, build_dir, data_dir
from helpers.infra.files import replace_atomic

MANIFEST = "manifest.json"
FOLDERS = ("models", "runs")  # the parts of data/ that hold trained weights
KEY_SUFFIX = ".key.json"  # the record written beside each cached model (training.py)
RUN_KEY = "key.json"  # the same, inside a run folder
FETCH_TIMEOUT = 30  # seconds without an answer before a download gives up


def module_fingerprints(names) -> dict[str, str]:
    """SHA-256 (16 hex digits) of the source of each named module as this code has it
    (``"missing"`` for a module that cannot be imported)."""
    import importlib
    import inspect

    result = {}
    for name in sorted(names):
        try:
            source = inspect.getsource(importlib.import_module(name))
        except (ImportError, OSError, TypeError):
            result[name] = "missing"
            continue
        result[name] = hashlib.sha256(source.encode()).hexdigest()[:16]
    return result


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _installed(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO_ROOT, capture_output=True, text=True, timeout=10,
                               check=True).stdout.strip()
        return out + ("-modified" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _key_records(root: Path) -> dict[str, dict]:
    """Every model's key record under ``root`` (data/), by its path relative to ``root``."""
    records = {}
    for path in sorted((root / "models").glob(f"*{KEY_SUFFIX}")):
        records[path.relative_to(root).as_posix()] = json.loads(path.read_text())
    for path in sorted((root / "runs").glob(f"*/{RUN_KEY}")):
        records[path.relative_to(root).as_posix()] = json.loads(path.read_text())
    return records


def pack(out: str | Path | None = None, root: Path | None = None) -> Path:
    """Write every trained model of the cache under ``root`` (default data/) into one
    ``.tar.gz`` archive with its manifest; return the archive's path (default
    build/weights/generative-weights.tar.gz). Models stored before keys were recorded (no
    key record) are left out with a message, since no one could check them."""
    root = Path(root or data_dir())
    files, skipped = [], []
    for record_path in _key_records(root):
        stem = record_path.removesuffix(KEY_SUFFIX)
        if record_path.endswith(f"/{RUN_KEY}") and record_path.startswith("runs/"):
            folder = root / PurePosixPath(record_path).parent
            files += sorted(p for p in folder.rglob("*") if p.is_file())
        else:
            pair = [root / f"{stem}.weights.h5", root / f"{stem}.history.json"]
            if all(p.exists() for p in pair):
                files += [*pair, root / record_path]
            else:
                skipped.append(stem)
    packed = {f.relative_to(root).parts[:2] for f in files}
    unrecorded = [p.name for p in sorted((root / "models").glob("*.weights.h5"))
                  if ("models", p.name) not in packed]
    unrecorded += [p.name for p in sorted((root / "runs").glob("*"))
                   if p.is_dir() and ("runs", p.name) not in packed]
    if not files:
        raise SystemExit(f"No trained model with a key record in {root}: run the notebooks "
                         "(make run) first")
    manifest = {
        "format": 1,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(), "tensorflow": _installed("tensorflow"),
        "keras": _installed("keras"), "python": sys.version.split()[0],
        "files": {p.relative_to(root).as_posix(): {"sha256": _sha256(p),
                                                   "bytes": p.stat().st_size}
                  for p in files},
        "models": _key_records(root)}
    out = Path(out) if out else build_dir("weights") / "generative-weights.tar.gz"
    out.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp):
        with tarfile.open(tmp, "w:gz") as archive:
            data = json.dumps(manifest, indent=2, sort_keys=True).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime = len(data), int(time.time())
            archive.addfile(info, io.BytesIO(data))
            for path in files:
                archive.add(path, arcname=path.relative_to(root).as_posix(), recursive=False)

    replace_atomic(out, write, suffix=".tar.gz")
    size = out.stat().st_size / 2**20
    print(f"Packed {len(manifest['models'])} trained models ({len(files)} files, {size:.1f} MB) "
          f"into {out}")
    for name in [*skipped, *unrecorded]:
        print(f"  left out {name}: stored without a key record (trained by older code); run "
              "its notebook again to include it")
    return out


def fetch(source: str, timeout: float = FETCH_TIMEOUT) -> Path:
    """A local path for ``source``: the file itself, or a URL downloaded (with ``timeout``
    seconds for each wait) into build/weights/. Stops with a clear message when offline."""
    if "://" not in source:
        path = Path(source).expanduser()
        if not path.is_file():
            raise SystemExit(f"WEIGHTS={source}: no such file (give an archive made by "
                             "`make weights`, or its URL)")
        return path
    name = PurePosixPath(urllib.request.urlparse(source).path).name or "weights.tar.gz"
    target = build_dir("weights") / f"downloaded-{name}"
    try:
        with urllib.request.urlopen(source, timeout=timeout) as response:
            replace_atomic(target, lambda tmp: Path(tmp).write_bytes(response.read()),
                           suffix=".tar.gz")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SystemExit(f"WEIGHTS={source}: could not download it ({reason}); are you "
                         "offline? Download the archive by other means and give its file "
                         "instead: make run WEIGHTS=path/to/generative-weights.tar.gz") from None
    return target


def _check_member(member: tarfile.TarInfo) -> PurePosixPath:
    """The member's path, if it is a plain file inside the archive's own tree."""
    path = PurePosixPath(member.name)
    if not member.isfile() or path.is_absolute() or ".." in path.parts or \
            (path.parts[0] not in FOLDERS and member.name != MANIFEST):
        raise SystemExit(f"The weights archive holds {member.name!r}, which is not one of its "
                         "model files; refused")
    return path


def differing_models(manifest: dict) -> dict[str, list[str]]:
    """For each model of ``manifest`` trained by code other than this checkout's, the
    training-code modules whose source differs."""
    names = {m for record in manifest.get("models", {}).values() for m in record.get("code", {})}
    current = module_fingerprints(names)
    differ = {}
    for key_path, record in manifest.get("models", {}).items():
        changed = [m for m, digest in record.get("code", {}).items() if current[m] != digest]
        if changed:
            differ[record.get("name", key_path)] = changed
    return differ


def unpack(source: str | Path, root: Path | None = None) -> dict:
    """Check and unpack the archive ``source`` (a file or URL) into the cache under ``root``
    (default data/): every file's SHA-256 must match the manifest and every model must have
    been trained by this code; files already in the cache are kept. Returns counts."""
    root = Path(root or data_dir())
    path = fetch(str(source))
    try:
        archive = tarfile.open(path, "r:gz")
    except (tarfile.TarError, OSError) as exc:
        raise SystemExit(f"WEIGHTS={source}: not a weights archive ({exc})") from None
    with archive:
        members = {str(_check_member(m)): m for m in archive.getmembers()}
        if MANIFEST not in members:
            raise SystemExit(f"WEIGHTS={source}: no {MANIFEST}; not an archive made by "
                             "`make weights`")
        manifest = json.loads(archive.extractfile(members[MANIFEST]).read())
        listed = manifest.get("files", {})
        extra = sorted(set(members) - set(listed) - {MANIFEST})
        missing = sorted(set(listed) - set(members))
        if extra or missing:
            raise SystemExit(f"WEIGHTS={source}: the archive and its manifest disagree "
                             f"(not listed: {extra[:3]}, absent: {missing[:3]}); refused")
        differ = differing_models(manifest)
        if differ:
            lines = "\n".join(f"  {model}: {', '.join(modules)}"
                              for model, modules in sorted(differ.items()))
            raise SystemExit(f"WEIGHTS={source} was made by other code (commit "
                             f"{manifest.get('commit', 'unknown')}); these models would not "
                             f"be this code's, so nothing was unpacked:\n{lines}\nMake a new "
                             "archive with `make weights` from this checkout's runs.")
        contents = {}
        # in the archive's own order: a gzip stream read backwards decompresses from its
        # start again for every step back
        for name in sorted(listed, key=lambda n: members[n].offset):
            info = listed[name]
            data = archive.extractfile(members[name]).read()
            digest = hashlib.sha256(data).hexdigest()
            if digest != info["sha256"]:
                raise SystemExit(f"WEIGHTS={source}: {name} has SHA-256 {digest[:16]}..., the "
                                 f"manifest says {info['sha256'][:16]}...; the archive is "
                                 "damaged, nothing was unpacked")
            contents[name] = data
    added = kept = 0
    for name, data in contents.items():
        target = root.joinpath(*PurePosixPath(name).parts)
        if target.exists():
            kept += 1
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        replace_atomic(target, lambda tmp, data=data: Path(tmp).write_bytes(data),
                       suffix=target.name[target.name.index("."):] if "." in target.name
                       else ".tmp")
        added += 1
    print(f"Unpacked {len(manifest.get('models', {}))} trained models from {source} into "
          f"{root} ({added} files added, {kept} already there; made with TensorFlow "
          f"{manifest.get('tensorflow')}, Keras {manifest.get('keras')}, commit "
          f"{manifest.get('commit')})")
    return {"added": added, "kept": kept, "models": len(manifest.get("models", {}))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    packing = commands.add_parser("pack", help="pack the weight cache into one archive")
    packing.add_argument("--out", type=Path, help="archive file (default "
                         "build/weights/generative-weights.tar.gz)")
    unpacking = commands.add_parser("unpack", help="unpack an archive into the weight cache")
    unpacking.add_argument("source", help="archive file or URL")
    args = parser.parse_args(argv)
    if args.command == "pack":
        pack(args.out)
    else:
        unpack(args.source)
    return 0


if __name__ == "__main__":
    from helpers.infra.config import quiet_tensorflow

    quiet_tensorflow()  # the code fingerprints import the model modules, and TensorFlow with them
    sys.exit(main())
