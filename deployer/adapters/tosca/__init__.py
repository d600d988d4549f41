"""TOSCA validation with tosca-parser, offline.

An adapter rather than core because tosca-parser fetches remote imports over the network; here every
import of the published type definitions is redirected to our own shipped file first, and any other
remote import is refused, so validation never leaves the machine. tosca-parser is imported lazily: it is
slow to import and ``deployer --help`` must stay fast.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import yaml

from deployer.core.render import PUBLISHED_TYPES_URL, types_file
from deployer.errors import UserError


def _localise_imports(document: dict, source: str) -> dict:
    imports = document.get("imports") or []
    local_imports = []
    for entry in imports:
        items = entry.items() if isinstance(entry, dict) else [("", entry)]
        for key, ref in items:
            ref = ref.get("file") if isinstance(ref, dict) else ref
            if ref == PUBLISHED_TYPES_URL or str(ref).endswith("/custom_types.yaml"):
                ref = str(types_file())
            elif re.match(r"^[a-z]+://", str(ref)) and not str(ref).startswith("file://"):
                raise UserError(
                    f"{source}: imports {ref}, a remote file; offline validation only knows the published"
                    " IM types. Import a local file instead"
                )
            local_imports.append({key: ref} if key else ref)
    if imports:
        document = {**document, "imports": local_imports}
    return document


def _first_error(message: str) -> str:
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    useful = [line for line in lines if re.search(r"Error|error:", line) and "pre-parsed input" not in line]
    return (useful or lines or ["invalid TOSCA"])[0]


def validate_tosca(text: str, source: str = "<tosca>") -> list[str]:
    """Validate TOSCA text offline; returns the node template names. Raises UserError naming ``source``."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"{source}: not valid YAML ({exc.__class__.__name__}); fix the syntax") from None
    if not isinstance(document, dict) or "tosca_definitions_version" not in document:
        raise UserError(f"{source}: not a TOSCA document (no tosca_definitions_version)")
    document = _localise_imports(document, source)
    from toscaparser.tosca_template import ToscaTemplate  # slow import: only when validating

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=True) as handle:
        yaml.safe_dump(document, handle, sort_keys=False)
        handle.flush()
        try:
            template = ToscaTemplate(handle.name)
        except Exception as exc:  # tosca-parser raises many unrelated types; all mean "invalid"
            raise UserError(f"{source}: {_first_error(str(exc))}") from None
    return [node.name for node in template.nodetemplates]


def is_tosca_file(path: Path) -> bool:
    try:
        head = path.read_text(encoding="utf-8")[:4096]
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    return "tosca_definitions_version" in head
