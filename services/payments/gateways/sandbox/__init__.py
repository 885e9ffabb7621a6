"""The built-in sandbox gateway, offline: its books, its gateway interface, its hosted checkout
page and its webhook sender, one module each (``gateway.SandboxGateway`` combines them)."""
