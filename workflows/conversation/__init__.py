"""One durable workflow per caller conversation."""
