"""The transport suite: the sync and async HTTP clients against loopback servers (helpers in
tests/replay_helpers.py)."""
