"""The built-in providers' metadata, registered with lazy creators.

`register_builtins(registry)` registers every entry of `BUILTINS` (the global registry calls
it when it is created, see `chatmodels._global`; the registry itself knows nothing of the
built-ins); no provider module is imported until a provider is first created.

To add a provider: write its wire format's module in this package with a
``create(metadata, options)`` that makes the instance (an `HTTPChatModel` subclass for an HTTP
API; `_mistral.py` is a short example), append the module's name and the provider's
`ProviderMetadata` to `BUILTINS`, and add its row to the README's table of providers.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

from .._metadata import Capability, ProviderMetadata, ProviderOptions

if TYPE_CHECKING:
    from .._model import ChatModel
    from .._registry import ProviderRegistry

__all__ = ["BUILTINS", "register_builtins"]

C = Capability
# Every chat capability (all but audio input and embeddings); entries say what they lack.
_CHAT_CAPS = frozenset(
    {
        C.CHAT,
        C.STREAMING,
        C.TOOL_CALLING,
        C.STRUCTURED_OUTPUT,
        C.JSON_MODE,
        C.VISION,
        C.REASONING,
        C.SYSTEM_PROMPT,
    }
)


def _openai_family(
    name: str,
    description: str,
    *,
    gen_ai: str,
    base_url: str | None,
    env: str | None,
    model: str | None,
    capabilities: frozenset[Capability] = _CHAT_CAPS,
    required: tuple[str, ...] = ("api_key",),
    optional: tuple[str, ...] = (),
    health: bool = True,
) -> tuple[str, ProviderMetadata]:
    """An entry served by the OpenAI Chat Completions adapter (``health`` False: its API has
    no models list to probe)."""
    return "._openai", ProviderMetadata(
        name=name,
        description=description,
        capabilities=capabilities,
        gen_ai_provider_name=gen_ai,
        default_model=model,
        required_options=required,
        optional_options=optional,
        supports_health_check=health,
        api_key_env=env,
        default_base_url=base_url,
        provider_specific={"health_probe": health},
    )


_OPENAI_FAMILY = (
    _openai_family(
        "openai",
        "OpenAI Chat Completions",
        gen_ai="openai",
        base_url="https://api.openai.com/v1",
        env="OPENAI_API_KEY",
        model="gpt-4o-mini",
    ),
    _openai_family(
        "azure_openai",
        "Azure OpenAI: deployments, api-version, the api-key header",
        gen_ai="azure.ai.openai",
        base_url=None,
        env="AZURE_OPENAI_API_KEY",
        model=None,
        required=("api_key", "base_url", "model"),
        optional=("api_version",),
    ),
    _openai_family(
        "groq",
        "Groq (OpenAI-compatible)",
        gen_ai="groq",
        base_url="https://api.groq.com/openai/v1",
        env="GROQ_API_KEY",
        model="llama-3.3-70b-versatile",
    ),
    _openai_family(
        "deepseek",
        "DeepSeek (OpenAI-compatible)",
        gen_ai="deepseek",
        base_url="https://api.deepseek.com/v1",
        env="DEEPSEEK_API_KEY",
        model="deepseek-chat",
        capabilities=_CHAT_CAPS - {C.STRUCTURED_OUTPUT, C.VISION},
    ),
    _openai_family(
        "xai",
        "xAI Grok (OpenAI-compatible)",
        gen_ai="x_ai",
        base_url="https://api.x.ai/v1",
        env="XAI_API_KEY",
        model="grok-3-mini",
    ),
    _openai_family(
        "together",
        "Together AI (OpenAI-compatible)",
        gen_ai="together",
        base_url="https://api.together.xyz/v1",
        env="TOGETHER_API_KEY",
        model="meta-llama/Llama-3.3-70B-Instruct-Turbo",
    ),
    _openai_family(
        "fireworks",
        "Fireworks AI (OpenAI-compatible)",
        gen_ai="fireworks",
        base_url="https://api.fireworks.ai/inference/v1",
        env="FIREWORKS_API_KEY",
        model="accounts/fireworks/models/llama-v3p1-8b-instruct",
    ),
    _openai_family(
        "openrouter",
        "OpenRouter (OpenAI-compatible)",
        gen_ai="openrouter",
        base_url="https://openrouter.ai/api/v1",
        env="OPENROUTER_API_KEY",
        model="openai/gpt-4o-mini",
    ),
    _openai_family(
        "perplexity",
        "Perplexity Sonar (OpenAI-compatible; no tool calling)",
        gen_ai="perplexity",
        base_url="https://api.perplexity.ai",
        env="PERPLEXITY_API_KEY",
        model="sonar",
        capabilities=_CHAT_CAPS - {C.TOOL_CALLING, C.JSON_MODE, C.VISION},
        health=False,
    ),
    _openai_family(
        "vllm",
        "A vLLM server (OpenAI-compatible)",
        gen_ai="vllm",
        base_url="http://localhost:8000/v1",
        env="VLLM_API_KEY",
        model=None,
        capabilities=_CHAT_CAPS - {C.REASONING},
        required=(),
    ),
    _openai_family(
        "lmstudio",
        "An LM Studio server (OpenAI-compatible)",
        gen_ai="lmstudio",
        base_url="http://localhost:1234/v1",
        env=None,
        model=None,
        capabilities=_CHAT_CAPS - {C.JSON_MODE, C.REASONING},
        required=(),
    ),
    _openai_family(
        "openai_compatible",
        "Any OpenAI-compatible server; requires base_url",
        gen_ai="openai_compatible",
        base_url=None,
        env=None,
        model=None,
        capabilities=_CHAT_CAPS - {C.REASONING},
        required=("base_url",),
    ),
)

BUILTINS: tuple[tuple[str, ProviderMetadata], ...] = (
    *_OPENAI_FAMILY,
    (
        "._fake",
        ProviderMetadata(
            name="fake",
            description="A deterministic in-process model: scripted replies, tool calls, "
            "errors, latency",
            capabilities=_CHAT_CAPS - {C.REASONING},
            gen_ai_provider_name="fake",
            default_model="fake-1",
            optional_options=("responses", "latency", "health"),
            supports_health_check=True,
        ),
    ),
    (
        "._anthropic",
        ProviderMetadata(
            name="anthropic",
            description="Anthropic Messages API",
            capabilities=_CHAT_CAPS - {C.JSON_MODE},
            gen_ai_provider_name="anthropic",
            default_model="claude-sonnet-4-5",
            required_options=("api_key",),
            optional_options=("anthropic_version",),
            supports_health_check=True,
            api_key_env="ANTHROPIC_API_KEY",
            default_base_url="https://api.anthropic.com",
        ),
    ),
    (
        "._cohere",
        ProviderMetadata(
            name="cohere",
            description="Cohere v2 Chat API",
            capabilities=_CHAT_CAPS,
            gen_ai_provider_name="cohere",
            default_model="command-a-03-2025",
            required_options=("api_key",),
            supports_health_check=True,
            api_key_env="CO_API_KEY",
            default_base_url="https://api.cohere.com",
        ),
    ),
    (
        "._bedrock",
        ProviderMetadata(
            name="bedrock",
            description="AWS Bedrock Runtime Converse and ConverseStream (SigV4 via botocore, "
            "or a Bedrock API key); needs chatmodels[bedrock]",
            capabilities=_CHAT_CAPS - {C.JSON_MODE, C.REASONING},
            gen_ai_provider_name="aws.bedrock",
            default_model="amazon.nova-lite-v1:0",
            optional_options=("region", "aws_profile"),
            supports_health_check=False,
            api_key_env="AWS_BEARER_TOKEN_BEDROCK",
            default_base_url="https://bedrock-runtime.{region}.amazonaws.com",
        ),
    ),
    (
        "._mistral",
        ProviderMetadata(
            name="mistral",
            description="Mistral AI chat completions",
            capabilities=_CHAT_CAPS,
            gen_ai_provider_name="mistral_ai",
            default_model="mistral-small-latest",
            required_options=("api_key",),
            optional_options=("safe_prompt",),
            supports_health_check=True,
            api_key_env="MISTRAL_API_KEY",
            default_base_url="https://api.mistral.ai",
        ),
    ),
    (
        "._gemini",
        ProviderMetadata(
            name="gemini",
            description="Google Gemini API (generateContent; API key; GOOGLE_API_KEY also read)",
            capabilities=_CHAT_CAPS,
            gen_ai_provider_name="gcp.gemini",
            default_model="gemini-2.5-flash",
            optional_options=("api_version",),
            supports_health_check=True,
            api_key_env="GEMINI_API_KEY",
            default_base_url="https://generativelanguage.googleapis.com",
        ),
    ),
    (
        "._gemini",
        ProviderMetadata(
            name="vertex_ai",
            description="Gemini on Google Cloud Vertex AI (generateContent; project, location, "
            "an access token or Application Default Credentials)",
            capabilities=_CHAT_CAPS,
            gen_ai_provider_name="gcp.vertex_ai",
            default_model="gemini-2.5-flash",
            optional_options=("project", "location", "api_version"),
            supports_health_check=True,
        ),
    ),
    (
        "._ollama",
        ProviderMetadata(
            name="ollama",
            description="Ollama native chat API (/api/chat, NDJSON streaming)",
            capabilities=_CHAT_CAPS,
            gen_ai_provider_name="ollama",
            default_model=None,
            supports_health_check=True,
            default_base_url="http://localhost:11434",
        ),
    ),
)


class LazyCreator:
    """A creator that imports its provider module on first use, then calls its `create`."""

    __slots__ = ("_module", "metadata", "module_name")

    def __init__(self, module_name: str, metadata: ProviderMetadata) -> None:
        self.module_name = module_name
        self.metadata = metadata
        self._module: ModuleType | None = None

    def __call__(self, options: ProviderOptions) -> ChatModel:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self.module_name, __package__)
        return module.create(self.metadata, options)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"<LazyCreator {self.metadata.name!r} from {self.module_name}>"


def register_builtins(registry: ProviderRegistry) -> None:
    """Register every built-in provider in `registry` (imports no provider module)."""
    for module_name, metadata in BUILTINS:
        registry.register(metadata.name, LazyCreator(module_name, metadata), metadata=metadata)
