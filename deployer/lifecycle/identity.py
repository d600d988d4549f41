"""A deployment's identity in the IM is its tag: find every infrastructure that carries it.

Called by the life-cycle use cases (``deployer.lifecycle.deploy``) and the ``list`` command. deployer
embeds a random tag in every template it submits, so whatever happened to a create request (answered,
lost, landed late, sent twice), the IM's own listing says which infrastructures belong to a deployment.
Each infrastructure's tag is read from the IM once and remembered in the state store: a template keeps
its tag for life, so looking for duplicates on every ``status`` costs one listing, not one read per
infrastructure.
"""

from __future__ import annotations

from dataclasses import dataclass

from deployer.adapters.im.client import IMClient
from deployer.adapters.state.store import DeploymentRecord, DeploymentStore
from deployer.errors import RemoteNotFound


@dataclass(frozen=True)
class TagScan:
    """Every infrastructure the IM lists for this user, in listing order, with its tag ('' for none)."""

    tags: dict[str, str]

    def carrying(self, tag: str) -> list[str]:
        return [inf_id for inf_id, found in self.tags.items() if found == tag]

    def __contains__(self, inf_id: object) -> bool:
        return inf_id in self.tags


def scan_tags(store: DeploymentStore, client: IMClient) -> TagScan:
    """List the IM's infrastructures and the tag of each (read from the IM only for new ones)."""
    live = client.list_ids()
    known = store.known_tags(client.url)
    fresh: dict[str, str] = {}
    for inf_id in live:
        if inf_id in known:
            continue
        try:
            fresh[inf_id] = client.infrastructure_tag(inf_id) or ""
        except RemoteNotFound:
            continue  # destroyed since the listing
    store.remember_tags(client.url, fresh, live=set(live))
    return TagScan({i: known.get(i, fresh.get(i, "")) for i in live if i in known or i in fresh})


@dataclass(frozen=True)
class Settled:
    record: DeploymentRecord
    adopted: str | None = None  # an infrastructure found by tag that the record did not name
    destroyed: tuple[str, ...] = ()  # duplicates carrying the tag, destroyed


def settle_duplicates(
    store: DeploymentStore, client: IMClient, record: DeploymentRecord, scan: TagScan | None = None
) -> Settled:
    """Make the record name exactly one infrastructure among those carrying its tag.

    The recorded one is kept when it still exists; otherwise the first one listed is adopted. Every
    other infrastructure with the tag is a duplicate (a create that landed late after a resubmission)
    and is destroyed.
    """
    scan = scan or scan_tags(store, client)
    tagged = scan.carrying(record.deployment_tag)
    if not tagged:
        return Settled(record)
    adopted = None
    if record.infrastructure_id not in tagged:
        adopted = tagged[0]
        record = store.update(record.name, infrastructure_id=adopted, status="pending")
    duplicates = tuple(inf_id for inf_id in tagged if inf_id != record.infrastructure_id)
    for inf_id in duplicates:
        client.destroy(inf_id)
    return Settled(record, adopted, duplicates)


def settled_message(name: str, settled: Settled) -> list[str]:
    """What a command says about a repair it made (empty when there was none)."""
    lines = []
    if settled.adopted:
        lines.append(f"{name}: adopted infrastructure {settled.adopted}, which carries this deployment's tag")
    for inf_id in settled.destroyed:
        lines.append(
            f"{name}: destroyed duplicate infrastructure {inf_id} (it carries this deployment's tag; "
            f"{settled.record.infrastructure_id} is kept)"
        )
    return lines
