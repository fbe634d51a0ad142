"""Data-subject requests: a shopper's data exported or erased, by the shopper's own app or the venue's admin.

The mall is the controller who answers such requests; the app offers them to its user directly as well
("download my data", "delete my account"). Both are audited, with a one-way hash of the shopper id.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path
from starlette.requests import HTTPConnection

from mallfence.auth.deps import credential, resolve
from mallfence.auth.models import AuditEntry
from mallfence.auth.service import KEY_PREFIX
from mallfence.db import transaction
from mallfence.deps import RuntimeDep
from mallfence.devices import service as device_service
from mallfence.devices.models import Shopper
from mallfence.errors import Forbidden, NotFound
from mallfence.privacy import pseudonym, service
from mallfence.privacy.schemas import ErasureOut

router = APIRouter(prefix="/v1/shoppers", tags=["privacy"])


def shopper_access(conn: HTTPConnection, rt: RuntimeDep, shopper_id: Annotated[str, Path(max_length=64)],
                   authorization: Annotated[str | None, Header()] = None,
                   x_device_id: Annotated[str | None, Header(max_length=64, description=(
                       "the calling app's device id, with its device token as the bearer"))] = None) -> str:
    """Who asks: an admin key of the shopper's venue, or one of the shopper's own devices (its token as the
    bearer, its id in ``X-Device-Id``). Answers who, for the audit log."""
    secret = credential(conn, authorization, None)
    conn.state.self_audited = True  # the route writes its own audit entry, with the numbers
    with rt.sessions() as session:
        shopper = session.get(Shopper, shopper_id)
        if secret.startswith(KEY_PREFIX) or x_device_id is None:
            principal = resolve(rt, secret)
            conn.state.principal = principal
            rt.rate.operator.take(principal.actor, "key")
            if principal.kind != "operator" or principal.role != "admin":
                raise Forbidden("a shopper's data is for the shopper's own app or an admin key of the venue")
            if shopper is None or not principal.sees(shopper.venue_id):
                raise NotFound(f"shopper {shopper_id!r} not found")  # not Forbidden: nothing about other venues
            return principal.actor
        device = device_service.authenticate(session, device_id=x_device_id, token=secret)
        rt.rate.device.take(device.id, "device")
        if shopper is None or device.shopper_id != shopper.id:
            raise Forbidden("a device may ask only for its own shopper's data")
        return f"device {pseudonym(device.id)}"


Requester = Annotated[str, Depends(shopper_access)]


def _audit(*, actor: str, action: str, shopper: Shopper, detail: dict[str, Any]) -> AuditEntry:
    return AuditEntry(actor=actor[:64], action=action, venue_id=shopper.venue_id,
                      target=f"shopper {pseudonym(shopper.id)}", status=200, detail=detail)


@router.get("/{shopper_id}/export")
def export_shopper(shopper_id: str, who: Requester, rt: RuntimeDep) -> dict[str, Any]:
    """Everything held about the shopper, as JSON: the shopper and its devices, consent history, events
    (with positions while retention keeps them), decisions, notifications and their delivery attempts, push
    tokens (tails only), wishlist, orders, purchases, segment. Credentials are never included."""
    with transaction(rt.sessions) as s:
        shopper = s.get(Shopper, shopper_id)
        if shopper is None:
            raise NotFound(f"shopper {shopper_id!r} not found")
        out = service.export(s, shopper=shopper)
        s.add(_audit(actor=who, action="shopper.export", shopper=shopper,
                     detail={t: len(rows) for t, rows in out["tables"].items() if rows}))
        return out


@router.delete("/{shopper_id}", response_model=ErasureOut)
def erase_shopper(shopper_id: str, who: Requester, rt: RuntimeDep) -> ErasureOut:
    """Erase the shopper: its devices (tokens stop working), positions, events, decisions, notifications,
    push tokens, wishlist, orders, purchases, consent history, identity codes, and webhook payloads naming
    it. Aggregates without identity stay. One transaction: all of it or none."""
    with transaction(rt.sessions) as s:
        shopper = s.get(Shopper, shopper_id)
        if shopper is None:
            raise NotFound(f"shopper {shopper_id!r} not found")
        devices = service.devices_of(s, shopper.id)
        removed = service.erase(s, shopper=shopper)
        s.add(_audit(actor=who, action="shopper.erase", shopper=shopper, detail={"removed": removed}))
    for device_id in devices:  # presence state (in process or in Redis) goes too
        rt.states.forget(device_id)
    return ErasureOut(shopper=pseudonym(shopper_id), devices=len(devices), removed=removed)
