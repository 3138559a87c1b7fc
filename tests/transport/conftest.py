"""The transport suite (`chatmodels._transport`): the sync and async HTTP clients against
loopback servers (helpers in tests/replay_helpers.py), the framing decoders and the retry
decision."""
