"""The local stack: each service is a process started, health-checked and stopped the same way."""
