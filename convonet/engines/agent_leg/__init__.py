"""The agent leg: how a transfer rings a human agent (built-in dashboard or Twilio + PBX)."""
