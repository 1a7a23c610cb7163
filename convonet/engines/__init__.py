"""Engine interfaces (LLM, calendar, speech) with their adapters, chosen by settings."""
