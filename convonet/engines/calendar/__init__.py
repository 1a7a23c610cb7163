"""Calendar engines: local tables by default, Google Calendar when configured."""
