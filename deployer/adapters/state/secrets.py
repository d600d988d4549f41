"""Per-cluster generated secrets (OSCAR/MinIO passwords, the Kubernetes admin token) and generated names.

Kept apart from the state database on purpose: the database never holds a secret. Each cluster has one
YAML file under ``DEPLOYER_HOME/secrets/`` with mode 0600, written atomically (temp file + rename), so a
crash never leaves half a file and the next render reuses exactly the same values.
"""

from __future__ import annotations

import os
import secrets as _random
import tempfile
from pathlib import Path

import yaml

from deployer.logs import register_secret
from deployer.paths import Paths, ensure_private_dir

_ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no look-alikes


def new_secret(length: int = 24) -> str:
    return "".join(_random.choice(_ALPHABET) for _ in range(length))


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically with mode 0600."""
    ensure_private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class SecretStore:
    def __init__(self, paths: Paths) -> None:
        self._dir = paths.state_dir / "secrets"
        self._names = paths.state_dir / "generated-names.yaml"

    def _file(self, cluster: str) -> Path:
        return self._dir / f"{cluster}.yaml"

    def load(self, cluster: str) -> dict[str, str]:
        path = self._file(cluster)
        if not path.exists():
            return {}
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        values = {str(k): str(v) for k, v in data.items()}
        for value in values.values():
            register_secret(value)
        return values

    def save(self, cluster: str, values: dict[str, str]) -> None:
        for value in values.values():
            register_secret(value)
        if values != self.load(cluster):
            write_private(self._file(cluster), yaml.safe_dump(dict(sorted(values.items()))))

    def forget(self, cluster: str) -> None:
        self._file(cluster).unlink(missing_ok=True)

    def generated_name(self, source: str) -> str:
        """A cluster name for a spec without one: made once per spec source, then reused."""
        names: dict[str, str] = {}
        if self._names.exists():
            names = yaml.safe_load(self._names.read_text(encoding="utf-8")) or {}
        if source not in names:
            names[source] = "oscar-" + "".join(
                _random.choice("abcdefghjkmnpqrstuvwxyz23456789") for _ in range(6)
            )
            write_private(self._names, yaml.safe_dump(names))
        return names[source]
