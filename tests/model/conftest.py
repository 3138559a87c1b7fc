"""The chat-model suite (the ChatModel interface and its value types, whatever the provider):
shared helpers are in tests/helpers.py and tests/replay_helpers.py."""
