"""Model backends: the embedded llama.cpp server (default) and any OpenAI-compatible endpoint."""

from infereco.backends.base import Backend, Completion, GenerationRequest
from infereco.backends.openai import OpenAIBackend

__all__ = ["Backend", "Completion", "GenerationRequest", "OpenAIBackend"]
