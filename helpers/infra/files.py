"""Atomic file writes: a reader never sees a half-written file. Used by the metrics
recorder, the weight cache and the GAN checkpoints (``training``), and the Ising data cache."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def replace_atomic(path: Path, write, suffix: str = ".tmp") -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into
    place, so readers never see a half-written file; the temporary file never outlives it.
    ``suffix`` ends the temporary name (Keras wants ``.weights.h5`` on weight files)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates files readable by their owner only
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)

def write_json_atomic(path: Path, payload) -> None:
    """Write ``payload`` as JSON to ``path`` atomically."""
    def write(tmp):
        with open(tmp, "w") as fh:
            json.dump(payload, fh, indent=2, sort_keys=True)

    replace_atomic(path, write)
