"""Deciding from what the visitor says: which route (``routing``), whether to hand off
(``escalation``), and the phrase matching both use (``phrases``: greetings, asking for a
person, the bot's keyword answers)."""
