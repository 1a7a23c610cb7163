"""Custom search attributes that let operators find calls in the Temporal UI."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

USER_ID = SearchAttributeKey.for_keyword("ConvonetUserId")
STATE = SearchAttributeKey.for_keyword("ConvonetState")
TRANSFERRED = SearchAttributeKey.for_bool("ConvonetTransferred")
OUTCOME = SearchAttributeKey.for_keyword("ConvonetOutcome")

ALL = (USER_ID, STATE, TRANSFERRED, OUTCOME)


def dev_server_flags() -> list[str]:
    """`--search-attribute NAME=Type` flags for `temporal server start-dev`."""
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}={key.indexed_value_type.name.title()}"]
    return flags
