"""Ansible adapter: runs deployer's playbooks (``ansible/``) with ``ansible-playbook`` as a subprocess.

``inventory`` builds the SSH targets and inventory; ``runner`` runs a playbook, streams progress from
our JSON-lines callback and returns a per-host summary. Ansible itself is never imported.
"""
