"""Connecting to Temporal with the converter and plugins every process must share."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.langgraph import LangGraphPlugin

from convonet.settings import Settings


def agent_plugin() -> LangGraphPlugin:
    # Imported lazily: the graph pulls in the activity modules, which only workers need.
    from workflows.agent_graph import GRAPH_NAME, build_agent_graph

    return LangGraphPlugin(graphs={GRAPH_NAME: build_agent_graph()})


async def connect(settings: Settings, with_agent_plugin: bool = False) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        plugins=[agent_plugin()] if with_agent_plugin else [],
    )
