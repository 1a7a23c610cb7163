"""Tells a transfer's workflow what its agent leg did (answered, bridged, hung up...)."""

from __future__ import annotations

from api.services import EdgeServices
from workflows.transfer.models import LegEvent, LegStatus
from workflows.transfer.workflow import TransferWorkflow


async def signal_leg(
    services: EdgeServices, transfer_id: str, status: LegStatus, leg_id: str = "", detail: str = ""
) -> None:
    client = await services.temporal()
    await client.get_workflow_handle(transfer_id).signal(
        TransferWorkflow.leg_event, LegEvent(status=status, leg_id=leg_id, detail=detail)
    )
