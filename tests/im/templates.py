"""Small hand-written TOSCA documents for the IM tests (our offline types, imported by absolute path)."""

from __future__ import annotations

import secrets

from deployer.core.render import types_file


def new_tag() -> str:
    return f"dpl-test-{secrets.token_hex(6)}"


def small_tosca(tag: str, *, public_front: bool = False, workers: int = 1) -> str:
    """A front VM and one scalable worker node ``wn`` with no interfaces (so no contextualization)."""
    endpoint = (
        "\n        endpoint:\n          properties:\n            network_name: PUBLIC" if public_front else ""
    )
    return f"""tosca_definitions_version: tosca_simple_yaml_1_0
imports:
  - deployer_types: {types_file()}
description: IM test cluster [deployer-id {tag}]
metadata:
  deployer_id: {tag}
topology_template:
  node_templates:
    front:
      type: tosca.nodes.indigo.Compute
      capabilities:{endpoint}
        host:
          properties:
            num_cpus: 1
            mem_size: 1 GB
        os:
          properties:
            type: linux
    wn:
      type: tosca.nodes.indigo.Compute
      capabilities:
        scalable:
          properties:
            count: {workers}
        host:
          properties:
            num_cpus: 1
            mem_size: 1 GB
        os:
          properties:
            type: linux
  outputs:
    front_public_ip:
      value: {{ get_attribute: [ front, public_address, 0 ] }}
    front_private_ip:
      value: {{ get_attribute: [ front, private_address, 0 ] }}
"""


def two_group_tosca(tag: str, *, wa: int = 1, wb: int = 1) -> str:
    """A front VM and two scalable worker nodes ``wa`` and ``wb`` (no interfaces: no contextualization)."""
    compute = """      type: tosca.nodes.indigo.Compute
      capabilities:{scalable}
        host:
          properties:
            num_cpus: 1
            mem_size: 1 GB
        os:
          properties:
            type: linux
"""
    scalable = "\n        scalable:\n          properties:\n            count: {}"
    return f"""tosca_definitions_version: tosca_simple_yaml_1_0
imports:
  - deployer_types: {types_file()}
description: IM fault test cluster [deployer-id {tag}]
metadata:
  deployer_id: {tag}
topology_template:
  node_templates:
    front:
{compute.format(scalable="")}    wa:
{compute.format(scalable=scalable.format(wa))}    wb:
{compute.format(scalable=scalable.format(wb))}"""
