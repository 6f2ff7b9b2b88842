"""GB/T 28181 over a compact asyncio SIP stack (see docs/design/gb28181.md)."""
