"""LLM engines: one interface, the embedded intent model and Claude."""
