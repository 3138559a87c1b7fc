"""Smoke test of an installed chatmodels (a wheel or a build from the sdist), from outside the
source tree: the import, both registry backends, and one loopback call per backend through
the registry (invoke and a stream against chatmodels.testing's OpenAI-compatible server).

Each backend runs in a child interpreter with CHATMODELS_BACKEND set (the backend is chosen at
import) and warnings as errors, so a Rust backend that fell back to Python fails.

    usage: python scripts/smoke.py            (exit 0 when both backends pass)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

CHILD = r"""
import sys, chatmodels
from chatmodels.testing import OpenAICompatibleServer, ScriptedReply

wanted = sys.argv[1]
assert chatmodels.backend() == wanted, (chatmodels.backend(), wanted)
if wanted == "rust":
    import chatmodels._core
chatmodels.register_global("smoke", lambda options: None, metadata={"capabilities": ["chat"]})
assert chatmodels.is_provider_registered("smoke")
assert "smoke" in chatmodels.get_providers_by_capability("chat")
chatmodels.unregister_provider("smoke")
replies = [ScriptedReply(text="Hello from loopback"), ScriptedReply(text="one two three")]
with OpenAICompatibleServer(replies) as server:
    options = {"base_url": server.base_url, "model": "test-model"}
    with chatmodels.new_registry_provider("openai_compatible", options) as model:
        reply = model.invoke("Say hello")
        streamed = "".join(chunk.text for chunk in model.stream("Count to three"))
    assert reply.text == "Hello from loopback", reply.text
    assert streamed == "one two three", streamed
    assert server.requests[0].json["messages"][-1]["content"] == "Say hello"
print(f"smoke: chatmodels {chatmodels.__version__} from {chatmodels.__file__}, backend "
      f"{wanted}: import, registry, invoke and stream on loopback ok")
"""


def main() -> int:
    """Run the smoke test on both backends; 0 when both pass."""
    failed = 0
    for backend in ("rust", "python"):
        env = {**os.environ, "CHATMODELS_BACKEND": backend}
        env.pop("PYTHONPATH", None)
        # A neutral working directory: only the installed package can be imported.
        with tempfile.TemporaryDirectory() as cwd:
            done = subprocess.run(
                [sys.executable, "-W", "error", "-c", CHILD, backend], env=env, cwd=cwd
            )
        if done.returncode != 0:
            print(f"smoke: backend {backend} FAILED", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
