"""The edges: Teams (botbuilder), the widget channel (Direct Line 3.0), storage, HTTP."""
