"""The medtap sensor: capture, decode, flows, app detection, parsers, inventory, CLI."""
