"""The assistant's contract: tool schemas, the system prompt and per-turn context."""
