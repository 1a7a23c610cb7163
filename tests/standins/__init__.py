"""Local servers that speak cloud vendors' documented wire protocols, so tests drive the
vendors' own SDKs end to end without the internet."""
