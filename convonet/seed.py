"""Demo data: users, a team, an agent and departments. Idempotent; refused in production."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy import select

from convonet.db.models import (
    Agent,
    AgentState,
    Department,
    Team,
    TeamMembership,
    TeamRole,
    User,
)
from convonet.db.session import session_scope
from convonet.security import hash_password, pin_hash
from convonet.settings import Settings


@dataclass(frozen=True)
class DemoUser:
    name: str
    email: str
    pin: str
    timezone: str
    team_role: str


@dataclass(frozen=True)
class DemoAgent:
    name: str
    login: str
    password: str
    extension: str


# Demo credentials are documented in the README; they exist only outside production.
DEMO_USERS = (
    DemoUser("Alice Martin", "alice@example.com", "1234", "America/New_York", "owner"),
    DemoUser("Bob Chen", "bob@example.com", "2345", "Europe/London", "member"),
    DemoUser("Carol Diaz", "carol@example.com", "3456", "UTC", "viewer"),
)
DEMO_TEAM = "Demo Team"
DEMO_AGENTS = (DemoAgent("Dana Agent", "dana", "agent-demo-2001", "2001"),)
DEMO_DEPARTMENTS = (
    ("general", "Anything else", "2001"),
    ("sales", "Plans, pricing and upgrades", "2001"),
    ("support", "Help with the product", "2001"),
    ("billing", "Invoices and payments", "2001"),
)


class SeedRefused(Exception):
    pass


async def seed(settings: Settings) -> dict[str, list[dict[str, str]]]:
    if settings.is_production:
        raise SeedRefused(
            "seed creates demo users with known PINs and refuses to run in production"
        )
    async with session_scope(settings.effective_database_url) as session:
        users: dict[str, User] = {}
        for demo in DEMO_USERS:
            user = await session.scalar(select(User).where(User.email == demo.email))
            if user is None:
                user = User(name=demo.name, email=demo.email, timezone=demo.timezone, active=True)
                session.add(user)
            user.pin_hash = pin_hash(demo.pin, settings.pin_pepper)
            users[demo.email] = user
        team = await session.scalar(select(Team).where(Team.name == DEMO_TEAM))
        if team is None:
            team = Team(name=DEMO_TEAM, description="Demo team for trying Convonet")
            session.add(team)
        await session.flush()
        for demo in DEMO_USERS:
            user = users[demo.email]
            membership = await session.scalar(
                select(TeamMembership).where(
                    TeamMembership.team_id == team.id, TeamMembership.user_id == user.id
                )
            )
            if membership is None:
                session.add(
                    TeamMembership(team_id=team.id, user_id=user.id, role=TeamRole(demo.team_role))
                )
        departments: dict[str, Department] = {}
        for name, description, extension in DEMO_DEPARTMENTS:
            department = await session.scalar(select(Department).where(Department.name == name))
            if department is None:
                department = Department(name=name, description=description, extension=extension)
                session.add(department)
            if department.team_id is None:
                department.team_id = team.id  # messages left for a department go here
            departments[name] = department
        await session.flush()
        for demo_agent in DEMO_AGENTS:
            agent = await session.scalar(select(Agent).where(Agent.login == demo_agent.login))
            if agent is None:
                agent = Agent(
                    name=demo_agent.name,
                    login=demo_agent.login,
                    password_hash=hash_password(demo_agent.password),
                    sip_extension=demo_agent.extension,
                    sip_username=demo_agent.extension,
                    state=AgentState.READY,
                    department_id=departments["general"].id,
                )
                session.add(agent)
    return {
        "users": [
            {"name": u.name, "email": u.email, "pin": u.pin, "timezone": u.timezone}
            for u in DEMO_USERS
        ],
        "agents": [asdict(a) for a in DEMO_AGENTS],
    }
