"""Errors raised while reading or checking a topology."""


class TopologyError(ValueError):
    """A topology description is malformed or physically inconsistent.

    The message names the node or link at fault and what was expected.
    """
