"""Real servers the tests and the demo start on free loopback ports, and stop."""
