"""SSH targets and the YAML inventory deployer hands to ``ansible-playbook``.

Called by ``deployer.lifecycle.edge`` (and any use case that runs our playbooks). Two groups: ``front``
(the cluster's front end, from the IM outputs or an explicit address) and ``edge`` (the boards).
Passwords land only in the 0600 inventory file of one run, never on a command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PYTHON = "/usr/bin/python3"


@dataclass(frozen=True)
class SshTarget:
    """One host Ansible connects to. ``name`` is the inventory name; ``address`` what SSH dials."""

    name: str
    address: str
    user: str = "root"
    key_file: Path | None = None
    password: str | None = field(default=None, repr=False)
    host_vars: dict[str, Any] = field(default_factory=dict)

    def inventory_vars(self) -> dict[str, Any]:
        host: dict[str, Any] = {"ansible_host": self.address, "ansible_user": self.user}
        if self.key_file is not None:
            host["ansible_ssh_private_key_file"] = str(self.key_file)
        if self.password is not None:
            host["ansible_password"] = self.password
        host.update(self.host_vars)
        return host


def build_inventory(
    front: SshTarget | None, edge: list[SshTarget], *, python: str = DEFAULT_PYTHON
) -> dict[str, Any]:
    """The inventory as a dict (dumped to YAML by the runner): groups ``front`` and ``edge``."""
    groups: dict[str, Any] = {
        "front": {"hosts": {front.name: front.inventory_vars()} if front else {}},
        "edge": {"hosts": {t.name: t.inventory_vars() for t in edge}},
    }
    return {"all": {"vars": {"ansible_python_interpreter": python}, "children": groups}}


def secrets_of(targets: list[SshTarget | None]) -> list[str]:
    """Passwords in these targets, for log redaction."""
    return [t.password for t in targets if t is not None and t.password]
