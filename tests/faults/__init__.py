"""Fault tests on the host: real agents, flow runs and emulators killed, paused, restarted and cut off."""
