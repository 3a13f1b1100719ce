"""The OAuth 2.1 authorization server MCP connectors (Claude.ai, Claude Desktop) sign in through.

A connector finds it from the 401 of a wiki's MCP URL (RFC 9728 metadata), registers itself
(RFC 7591), sends its user to the platform's sign-in and consent page (authorization code with PKCE,
bound to the one wiki's MCP URL by RFC 8707 `resource`) and gets tokens that work on that URL only.
The protocol steps are the MCP SDK's handlers (`mcp.server.auth`); what is the platform's is here:
clients and codes (`registry.py`), the tokens of a consent (`grants.py`), the SDK's provider
(`provider.py`) and the HTTP side with its metadata documents (`server.py`). The consent page is the
web's (`webui/consent.py`).
"""
