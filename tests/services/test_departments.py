"""Department listing and transfer requests."""

from __future__ import annotations

from sqlalchemy import select

from convonet.db.models import Agent, CallRecord, Department, User
from convonet.db.session import session_scope
from tests.services.conftest import Run


async def _departments(db_url: str) -> None:
    async with session_scope(db_url) as session:
        general = Department(name="general", description="Anything else", extension="2000")
        sales = Department(name="Sales", description="Buying and pricing", extension="2001")
        session.add_all([general, sales])
        await session.flush()
        session.add(
            Agent(
                name="Sam",
                login="sam",
                password_hash="x",
                sip_extension="1001",
                sip_username="sam-sip",
                sip_password="sip-secret",
                department_id=sales.id,
            )
        )


async def test_list_departments(db_url: str, run: Run, users: dict[str, User]) -> None:
    await _departments(db_url)
    result = await run(users["ann"], "list_departments")
    assert result.ok and result.say == "I can put you through to general or Sales."
    assert result.data["departments"] == [
        {"name": "general", "description": "Anything else"},
        {"name": "Sales", "description": "Buying and pricing"},
    ]


async def test_transfer_records_the_request(db_url: str, run: Run, users: dict[str, User]) -> None:
    await _departments(db_url)
    ann = users["ann"]
    result = await run(ann, "transfer_to_agent", department="sales", reason="pricing question")
    assert result.ok and result.say == "Connecting you to someone in Sales."
    assert set(result.data) == {"department", "extension", "reason", "call_record_id"}
    assert result.data["reason"] == "pricing question"
    assert result.data["department"] == "Sales" and result.data["extension"] == "2001"
    assert "sip-secret" not in str(result.model_dump())

    default = await run(ann, "transfer_to_agent")
    assert default.ok and default.data["department"] == "general"
    empty = await run(ann, "transfer_to_agent", department="")
    assert empty.ok and empty.data["department"] == "general"

    async with session_scope(db_url) as session:
        records = list(await session.scalars(select(CallRecord).order_by(CallRecord.id)))
    assert len(records) == 3
    first = records[0]
    assert first.id == result.data["call_record_id"]
    assert (first.conversation_id, first.user_id, first.state, first.reason) == (
        "conv-1",
        ann.id,
        "requested",
        "pricing question",
    )


async def test_unknown_department(db_url: str, run: Run, users: dict[str, User]) -> None:
    await _departments(db_url)
    result = await run(users["ann"], "transfer_to_agent", department="billing")
    assert not result.ok and result.say == "I can only put you through to general or Sales."
    async with session_scope(db_url) as session:
        assert list(await session.scalars(select(CallRecord))) == []
