"""Business logic for the assistant's tools. Every function acts as one given user."""
