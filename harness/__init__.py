"""respcheck: conformance and load testing for OpenAI Responses API servers."""

__version__ = "0.1.0"
