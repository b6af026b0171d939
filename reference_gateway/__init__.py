"""A minimal, correct OpenAI Responses API server in front of any chat-completions upstream.

It shares data with the checker (``specs/``) but never code: see DESIGN.md, principle 2.
"""

from reference_gateway.config import GatewayConfig

__all__ = ["GatewayConfig"]
