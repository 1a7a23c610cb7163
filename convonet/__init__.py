"""Convonet: shared code for the edge, the worker and the command-line tool."""
