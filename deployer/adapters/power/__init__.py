"""Power managers: the port through which the elasticity daemon turns worker nodes on and off.

``PowerManager`` is the small contract (like the Cluster Autoscaler's ``NodeGroup``); ``im.IMPowerManager``
(cloud VMs through the Infrastructure Manager) and ``edge.EdgePowerManager`` (Wake-on-LAN / SSH shutdown /
always-on boards) implement it, and the tests use a recording fake. The daemon's actuator is the only caller.
"""

from __future__ import annotations

from deployer.adapters.power.port import PoweredOn, PowerManager

__all__ = ["PowerManager", "PoweredOn"]
