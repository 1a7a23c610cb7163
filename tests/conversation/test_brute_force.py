"""20 wrong PINs from one client: refused, then locked out, and the audit log shows it."""

from __future__ import annotations

from sqlalchemy import select

from convonet.call_client import ScriptedCaller
from convonet.db.models import AuthAudit
from convonet.db.session import session_scope
from convonet.seed import seed
from convonet.settings import Settings
from tests.system import running_system


async def test_twenty_wrong_pins_lock_the_address_out(settings: Settings) -> None:
    await seed(settings)
    reasons: list[str] = []
    async with running_system(settings) as system:
        caller = ScriptedCaller(system.url)
        await caller.connect()
        for attempt in range(20):
            ack = await caller.request("authenticate", {"pin": f"{9000 + attempt}"})
            if not ack["ok"]:
                # The conversation ended after 5 failures: a brute-forcer simply reconnects.
                assert "ended" in ack["error"]["message"]
                await caller.close()
                caller = ScriptedCaller(system.url)
                await caller.connect()
                ack = await caller.request("authenticate", {"pin": f"{9000 + attempt}"})
            assert ack["data"]["ok"] is False
            reasons.append(ack["data"]["reason"])
            if ack["data"]["state"] == "ended":
                await caller.close()
                caller = ScriptedCaller(system.url)
                await caller.connect()
        # Even the right PIN is refused while the address is locked out.
        right = await caller.request("authenticate", {"pin": "1234"})
        assert right["data"]["ok"] is False
        assert "Too many wrong PINs from this device" in right["data"]["reason"]
        await caller.close()

    assert all("not right" in r for r in reasons[:9])
    assert all("Too many wrong PINs from this device" in r for r in reasons[9:])
    async with session_scope(settings.effective_database_url) as session:
        audit = (await session.scalars(select(AuthAudit).order_by(AuthAudit.id))).all()
    outcomes = [row.outcome for row in audit]
    assert outcomes[:9] == ["wrong"] * 9
    assert outcomes[9] == "wrong-locked"
    assert outcomes[10:] == ["locked"] * 11
    assert all(row.client_address == "127.0.0.1" and row.user_id is None for row in audit)
