"""The transfer of a caller to a human agent, as a child workflow of the conversation."""
