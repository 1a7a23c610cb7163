"""Every tool the assistant can call: name, spoken-style description and typed arguments.

The same argument models validate what an LLM asks for (Claude or the intent model) and
drive the JSON schema sent to the LLM. None of them carries a user id: tools always act as
the authenticated caller, whose id comes from workflow state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PriorityName = Literal["low", "medium", "high", "urgent"]
RoleName = Literal["owner", "admin", "member", "viewer"]


class ToolArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TodoRef(ToolArgs):
    """Points at one of the caller's todos by number or by words from its title."""

    todo_id: int | None = Field(None, description="Todo number, if known")
    title_match: str | None = Field(None, max_length=200, description="Words from the title")


class CreateTodo(ToolArgs):
    title: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)
    priority: PriorityName = "medium"
    due: str | None = Field(None, description="ISO 8601 date or date-time")


class ListTodos(ToolArgs):
    status: Literal["open", "done", "all"] = "open"
    due: Literal["today", "tomorrow", "this_week", "overdue"] | None = None
    priority: PriorityName | None = None


class UpdateTodo(TodoRef):
    new_title: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=2000)
    priority: PriorityName | None = None
    due: str | None = Field(None, description="ISO 8601 date or date-time")


class ReminderRef(ToolArgs):
    reminder_id: int | None = None
    text_match: str | None = Field(None, max_length=300)


class CreateReminder(ToolArgs):
    text: str = Field(min_length=1, max_length=300)
    remind_at: str = Field(description="ISO 8601 date-time in the caller's time zone")


class DateRange(ToolArgs):
    day: str | None = Field(None, description="ISO date; default today")
    end_day: str | None = Field(None, description="ISO date, inclusive, for a range")


class UpdateReminder(ReminderRef):
    text: str | None = Field(None, max_length=300)
    remind_at: str | None = None


class EventRef(ToolArgs):
    event_id: str | None = Field(None, description="Event id as listed")
    title_match: str | None = Field(None, max_length=200)


class CreateEvent(ToolArgs):
    title: str = Field(min_length=1, max_length=200)
    starts_at: str = Field(description="ISO 8601 date-time in the caller's time zone")
    duration_minutes: int = Field(60, ge=1, le=24 * 60)
    location: str = Field("", max_length=200)


class UpdateEvent(EventRef):
    new_title: str | None = Field(None, max_length=200)
    starts_at: str | None = None
    duration_minutes: int | None = Field(None, ge=1, le=24 * 60)
    location: str | None = Field(None, max_length=200)


class NoArgs(ToolArgs):
    pass


class TeamRef(ToolArgs):
    team: str = Field(min_length=1, max_length=120, description="Team name")


class CreateTeam(ToolArgs):
    name: str = Field(min_length=1, max_length=120)
    description: str = Field("", max_length=500)


class TeamMember(TeamRef):
    user: str = Field(min_length=1, max_length=255, description="Member's name or email")


class AddTeamMember(TeamMember):
    role: RoleName = "member"


class ChangeMemberRole(TeamMember):
    role: RoleName


class SearchUsers(ToolArgs):
    query: str = Field(min_length=1, max_length=120)


class CreateTeamTodo(TeamRef):
    title: str = Field(min_length=1, max_length=200)
    assignee: str | None = Field(None, max_length=255, description="Member's name or email")
    priority: PriorityName = "medium"
    due: str | None = None


class TransferToAgent(ToolArgs):
    department: str = Field("general", max_length=80)
    reason: str = Field("", max_length=300)


class TakeMessage(ToolArgs):
    message: str = Field(min_length=1, max_length=500)
    department: str | None = Field(
        None, max_length=80, description="Defaults to the department the caller last tried"
    )


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    args: type[ToolArgs]

    def json_schema(self) -> dict[str, Any]:
        return self.args.model_json_schema()


TOOL_SPECS: tuple[ToolSpec, ...] = (
    ToolSpec("create_todo", "Add a todo for the caller.", CreateTodo),
    ToolSpec("list_todos", "List the caller's todos, with optional filters.", ListTodos),
    ToolSpec(
        "update_todo", "Change a todo's title, description, priority or due date.", UpdateTodo
    ),
    ToolSpec("complete_todo", "Mark a todo as done.", TodoRef),
    ToolSpec("delete_todo", "Delete a todo.", TodoRef),
    ToolSpec("create_reminder", "Set a reminder at a date and time.", CreateReminder),
    ToolSpec("list_reminders", "List reminders for a day or a range of days.", DateRange),
    ToolSpec("update_reminder", "Change a reminder's text or time.", UpdateReminder),
    ToolSpec("delete_reminder", "Delete a reminder.", ReminderRef),
    ToolSpec("create_event", "Put an event on the caller's calendar.", CreateEvent),
    ToolSpec("list_events", "List calendar events for a day or a range of days.", DateRange),
    ToolSpec("update_event", "Move, rename or relocate a calendar event.", UpdateEvent),
    ToolSpec("delete_event", "Remove a calendar event.", EventRef),
    ToolSpec("list_my_teams", "List the teams the caller belongs to, with their role.", NoArgs),
    ToolSpec("list_team_members", "List the members of one of the caller's teams.", TeamRef),
    ToolSpec("create_team", "Create a team; the caller becomes its owner.", CreateTeam),
    ToolSpec("add_team_member", "Add a user to a team (owner or admin only).", AddTeamMember),
    ToolSpec("remove_team_member", "Remove a user from a team (owner or admin).", TeamMember),
    ToolSpec(
        "change_member_role", "Change a member's role (owner or admin only).", ChangeMemberRole
    ),
    ToolSpec("search_users", "Find users by name or email.", SearchUsers),
    ToolSpec("create_team_todo", "Add a todo for a team, optionally assigned.", CreateTeamTodo),
    ToolSpec("list_departments", "List the departments a caller can be put through to.", NoArgs),
    ToolSpec(
        "transfer_to_agent",
        "Put the caller through to a human agent in a department.",
        TransferToAgent,
    ),
    ToolSpec(
        "take_message",
        "Leave the caller's message for a department's team when nobody could take the call; "
        "the team gets it as a todo.",
        TakeMessage,
    ),
)

TOOLS_BY_NAME: dict[str, ToolSpec] = {spec.name: spec for spec in TOOL_SPECS}
