"""The chatmodels demo: `make demo` runs it.

It registers providers with metadata, finds them by capability, creates instances, shows what
bad input gets (the error's message and code), and prints the registry benchmark table.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import chatmodels
from chatmodels import Capability, ChatModel, ChatModelError, ProviderMetadata, ProviderOptions


class EchoModel(ChatModel):
    """A stand-in provider instance for the registry part of the demo."""


def heading(text: str) -> None:
    print(f"\n== {text} " + "=" * max(0, 70 - len(text)))


def registry_tour() -> None:
    heading(f"registry (backend: {chatmodels.backend()})")
    catalogue = {
        "acme-chat": ["chat", "streaming", "system_prompt"],
        "acme-tools": ["chat", "tool_calling", "structured_output", "json_mode"],
        "acme-vision": ["chat", "streaming", "vision"],
    }
    for name, caps in catalogue.items():
        metadata = ProviderMetadata(
            name=name,
            description=f"the {name} demo provider",
            capabilities=caps,
            gen_ai_provider_name="acme",
            default_model=f"{name}-1",
            required_options=["api_key"],
            optional_options=["region"],
        )
        chatmodels.register_global_with_metadata(
            name, lambda options, m=metadata: EchoModel(m, options), metadata
        )
    print("registered:", ", ".join(n for n in chatmodels.list_providers() if n in catalogue))
    for cap in (Capability.STREAMING, Capability.TOOL_CALLING, Capability.VISION):
        found = [n for n in chatmodels.get_providers_by_capability(cap) if n in catalogue]
        print(f"  with {cap.value:<14}: {', '.join(found)}")

    model = chatmodels.new_registry_provider(
        "acme-tools", {"api_key": "sk-demo-secret", "region": "eu", "temperature": 0.2}
    )
    print("created:", model, "with", model.options)
    print("  (the API key is a Secret: it never shows in a repr, a log or an error)")

    chatmodels.register_global(
        "acme-chat",
        lambda options: EchoModel(chatmodels.get_provider_metadata("acme-chat"), options),
        metadata=ProviderMetadata(name="acme-chat", capabilities=["chat"], version="2"),
        replace=True,
    )
    print(
        "replaced acme-chat atomically; now version",
        chatmodels.get_provider_metadata("acme-chat").version,
    )


def bad_input_tour() -> None:
    heading("bad input: a clear error with op and code, and the registry unchanged")
    before = chatmodels.list_providers()

    def slow_creator(options: ProviderOptions) -> ChatModel:
        import time

        time.sleep(1)
        return EchoModel(ProviderMetadata(name="slow"), options)

    chatmodels.register_global("slow", slow_creator)
    attempts = [
        ("empty name", lambda: chatmodels.register_global("", EchoModel)),
        ("name of 300 characters", lambda: chatmodels.register_global("x" * 300, EchoModel)),
        ("name that is not a str", lambda: chatmodels.is_provider_registered(42)),  # type: ignore[arg-type]
        ("creator not callable", lambda: chatmodels.register_global("x", "nope")),  # type: ignore[arg-type]
        ("duplicate name", lambda: chatmodels.register_global("acme-tools", EchoModel)),
        ("unknown provider", lambda: chatmodels.new_registry_provider("acme-tool")),
        ("unknown option", lambda: chatmodels.new_registry_provider("acme-tools", {"modle": "x"})),
        ("missing api_key", lambda: chatmodels.new_registry_provider("acme-vision")),
        (
            "creator past its timeout",
            lambda: chatmodels.new_registry_provider("slow", timeout=0.05),
        ),
    ]
    for label, attempt in attempts:
        try:
            attempt()
        except ChatModelError as exc:
            print(f"  {label:<26} {type(exc).__name__}: code={exc.code.value}")
            print(f"  {'':<26} {exc}")
        else:
            raise SystemExit(f"the demo expected an error for: {label}")
    chatmodels.unregister_provider("slow")
    assert chatmodels.list_providers() == before, "a failed call changed the registry"
    print("  the registry is unchanged:", len(before), "providers")


def benchmark_table() -> None:
    heading("benchmarks (quick run; `make bench` for the full one)")
    script = Path(__file__).resolve().parents[1] / "benches" / "bench_registry.py"
    subprocess.run([sys.executable, str(script), "--quick"], check=True)


if __name__ == "__main__":
    registry_tour()
    bad_input_tour()
    benchmark_table()
