"""The provider suite: each wire format replayed from its recordings (tests/replay_helpers.py),
the conformance harness over all of them, and the shapes of a valid reply (wire_shapes.py)."""
