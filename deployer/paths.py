"""Where deployer keeps its files.

``DEPLOYER_HOME`` relocates everything (tests and reproducible labs set it); otherwise the XDG
config and state directories are used. Pure path arithmetic: nothing is created here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    config_dir: Path
    state_dir: Path

    @property
    def state_db(self) -> Path:
        return self.state_dir / "state.db"

    @property
    def clouds_file(self) -> Path:
        return self.config_dir / "clouds.yaml"

    @property
    def local_im_dir(self) -> Path:
        return self.state_dir / "local-im"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def locks_dir(self) -> Path:
        """One lock file per deployment: one writer at a time on this machine."""
        return self.state_dir / "locks"


def resolve_paths(env: dict[str, str] | None = None) -> Paths:
    env = dict(os.environ) if env is None else env
    home = env.get("DEPLOYER_HOME")
    if home:
        root = Path(home).expanduser().resolve()
        return Paths(config_dir=root, state_dir=root)
    user_home = Path(env.get("HOME", "~")).expanduser()
    config = Path(env.get("XDG_CONFIG_HOME") or user_home / ".config") / "deployer"
    state = Path(env.get("XDG_STATE_HOME") or user_home / ".local" / "state") / "deployer"
    return Paths(config_dir=config, state_dir=state)


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700; deployer directories hold credentials-adjacent data."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path
