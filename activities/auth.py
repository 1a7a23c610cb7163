"""PIN verification and session lifetime. PINs are read from a short-lived Redis hand-off."""

from __future__ import annotations

import json

from sqlalchemy import select
from temporalio import activity

from activities import runtime
from activities.models import CloseSessionInput, PinOutcome, VerifyPinInput, VerifyPinResult
from convonet import redis_keys
from convonet.db.models import AuthAudit, User
from convonet.db.session import session_scope
from convonet.security import pin_hash
from workflows.conversation.models import Caller


@activity.defn
async def verify_pin(request: VerifyPinInput) -> VerifyPinResult:
    rt = runtime.current()
    settings, redis = rt.settings, rt.redis
    address = request.client_address or "unknown"

    lock_ttl = await redis.ttl(redis_keys.address_lock(address))
    if lock_ttl and lock_ttl > 0:
        await _audit(request, None, PinOutcome.LOCKED)
        return VerifyPinResult(outcome=PinOutcome.LOCKED, locked_for_s=lock_ttl)

    pin = await redis.getdel(redis_keys.pin_handoff(request.pin_token))
    if pin is None:
        return VerifyPinResult(outcome=PinOutcome.EXPIRED)

    async with session_scope(settings.effective_database_url) as session:
        user = await session.scalar(
            select(User).where(
                User.pin_hash == pin_hash(str(pin), settings.pin_pepper), User.active.is_(True)
            )
        )
    if user is None:
        failures = await redis.incr(redis_keys.address_failures(address))
        await redis.expire(redis_keys.address_failures(address), settings.address_lockout_s)
        if failures >= settings.max_pin_failures_per_address:
            await redis.set(redis_keys.address_lock(address), "1", ex=settings.address_lockout_s)
            await _audit(request, None, "wrong-locked")
            return VerifyPinResult(
                outcome=PinOutcome.LOCKED, locked_for_s=settings.address_lockout_s
            )
        await _audit(request, None, PinOutcome.WRONG)
        return VerifyPinResult(outcome=PinOutcome.WRONG)

    await redis.delete(redis_keys.address_failures(address))
    caller = Caller(user_id=user.id, name=user.name, timezone=user.timezone)
    payload = json.dumps(
        {"user_id": user.id, "name": user.name, "conversation_id": request.conversation_id}
    )
    ttl = settings.session_ttl_s
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(redis_keys.session(request.session_digest), payload, ex=ttl)
        pipe.set(
            redis_keys.conversation_session(request.conversation_id), request.session_digest, ex=ttl
        )
        await pipe.execute()
    await _audit(request, user.id, PinOutcome.OK)
    return VerifyPinResult(outcome=PinOutcome.OK, caller=caller)


async def _audit(request: VerifyPinInput, user_id: int | None, outcome: str) -> None:
    async with session_scope(runtime.current().settings.effective_database_url) as session:
        session.add(
            AuthAudit(
                conversation_id=request.conversation_id,
                client_address=request.client_address or "unknown",
                user_id=user_id,
                outcome=str(outcome),
            )
        )


@activity.defn
async def close_session(request: CloseSessionInput) -> None:
    redis = runtime.current().redis
    key = redis_keys.conversation_session(request.conversation_id)
    digest = await redis.get(key)
    if digest:
        await redis.delete(redis_keys.session(str(digest)), key)
