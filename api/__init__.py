"""The edge: FastAPI REST and the Socket.IO namespaces browsers talk to."""
