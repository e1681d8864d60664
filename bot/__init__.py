"""The handoff domain: pure, framework-neutral, clock passed in."""
