"""Locate deployer's non-Python assets: the TOSCA templates and the Ansible playbooks.

They live at the top of the repository (``tosca_templates/``, ``ansible/``); ``deployer/_assets/`` holds
symlinks to them, which a wheel turns into copies (see pyproject.toml). So one lookup works in a checkout,
an editable install and a wheel. Pure path arithmetic.
"""

from __future__ import annotations

from pathlib import Path

_ASSETS = Path(__file__).resolve().parent / "_assets"


def asset_dir(name: str) -> Path:
    found = _ASSETS / name
    if not found.is_dir():
        raise FileNotFoundError(f"deployer asset folder '{name}' is missing from this installation ({found})")
    return found
