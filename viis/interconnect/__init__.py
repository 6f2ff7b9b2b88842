"""Interconnection with other systems: GB/T 28181 (up and down), events."""
