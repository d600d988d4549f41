"""deployer: render, deploy and elastically scale Kubernetes + OSCAR clusters through the IM.

Layout (outer layers may import inner ones, never the reverse):

- ``deployer.core``: pure logic (spec model, TOSCA rendering, elasticity decisions). No network,
  subprocess or Kubernetes/Ansible/requests imports.
- ``deployer.adapters``: thin I/O edges (IM REST, Kubernetes, Ansible, power managers, state store, clouds).
- ``deployer.lifecycle``, ``deployer.daemon``, ``deployer.sim``: use cases that join core and adapters.
- ``deployer.cli``: the Typer command line on top.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
