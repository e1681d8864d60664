"""Every visitor- and specialist-facing text, as templates with named placeholders."""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

# Placeholders a template may use; anything else is a config error caught at load.
# ``visitor_comma`` is " Jane" when the name is known, else empty ("Hi{visitor_comma}!").
# ``back`` is when a closed route opens again ("tomorrow at 09:00").
PLACEHOLDERS = frozenset(
    {"visitor", "visitor_comma", "specialist", "route", "bot", "reason", "duration", "back"}
)


def _check_placeholders(value: Any) -> Any:
    if not isinstance(value, str):
        return value  # an untranslated key (None), or the locales table itself
    for _, name, spec, conversion in string.Formatter().parse(value):
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            allowed = ", ".join(sorted(PLACEHOLDERS))
            raise ValueError(f"unknown placeholder {{{name}}} (allowed: {allowed})")
        if spec or conversion:
            # "{bot:>100000000}" would write 100 MB, "{bot:%}" fail on every message.
            raise ValueError(f"write the placeholder as {{{name}}}, without a format or a !")
    return value


class _TextsBase(BaseModel):
    """Templates; ops override any of them in YAML under ``texts:``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    greeting: str = (
        "Hi{visitor_comma}! I'm {bot}, the virtual assistant. Ask me anything, "
        'or say "talk to a person" and I\'ll bring in a specialist.'
    )
    hello: str = "Hello{visitor_comma}! How can I help you today?"
    fallback: str = (
        "I'm not sure I can answer that. Would you like me to connect you with a specialist? "
        'Just say "talk to a person".'
    )
    queued: str = (
        "I'm connecting you with a specialist from {route}. They'll see our conversation "
        "so far, so you won't need to repeat yourself."
    )
    joined: str = "{specialist} has joined and has the full context of your conversation."
    ended_by_visitor: str = (
        "You ended the chat with {specialist}. I'm here if you need anything else."
    )
    ended_by_specialist: str = (
        "{specialist} has ended the chat. I'm here again if you need anything else."
    )
    # Ended while still waiting, before anyone joined.
    cancelled_by_visitor: str = (
        "OK, I've cancelled the request for a specialist. I'm here if you need anything else."
    )
    # The visitor has asked for a person (and cancelled) too often in the last hour.
    too_many_handoffs: str = (
        "I've asked the team for you several times in the last hour. Please stay with me a "
        "little while before asking again; I'm happy to help in the meantime."
    )
    # The visitor writes faster than the desk takes messages; what they send is refused a while.
    slow_down: str = (
        "You're sending messages faster than I can pass them on to {route}. "
        "Please wait a moment, then send the rest."
    )
    # A message of the visitor's could not be handled, after several attempts.
    message_failed: str = (
        "Sorry, something went wrong with your last message and I could not handle it. "
        "Our team has been told. Could you send it again, perhaps in other words?"
    )
    declined: str = (
        "Our team can't take this chat right now, sorry. I'm here to help in the meantime."
    )
    failed: str = (
        "Sorry, I couldn't reach a specialist right now. I'll keep helping, or you can try "
        "again in a few minutes."
    )
    choose_route: str = "Which team can help you?"
    out_of_hours_back: str = (
        "Our specialists from {route} are back {back}. I'll keep helping as best I can until then."
    )
    no_route: str = (
        "I can't connect you with a specialist for this, sorry. I'll keep helping as best I can."
    )
    handoff_unavailable: str = (
        "Talking to a person isn't available here, sorry. I'll do my best to help."
    )
    out_of_hours: str = (
        "Our specialists from {route} aren't available right now. I'll keep helping as best I can."
    )
    join_timeout: str = (
        "Sorry, none of our specialists could take your chat right now. I'm still here to help."
    )
    leave_message: str = (
        "Our specialists are all busy right now. Leave your message here: it reaches the team, "
        "and someone will pick it up as soon as they are free."
    )
    idle_reminder: str = "Are you still there? This chat will close soon if there's no reply."
    ended_idle: str = (
        "This chat was closed after a while without messages. I'm here if you need anything else."
    )
    transferred: str = "{specialist} has taken over your conversation and has its full context."
    transfer_usage: str = "To hand over, mention your colleague: /transfer @name"
    transfer_done: str = "{specialist} now has this conversation."
    already_queued: str = "You're already in line; a specialist will be with you shortly."
    already_joined: str = "You're already talking to {specialist}."
    nothing_to_end: str = "There's no specialist chat to end. How else can I help?"
    # desk side (said in the thread)
    taken: str = "{specialist} is already handling this conversation."
    closed: str = "This conversation has already ended."
    not_joined: str = "Only {specialist}, who joined this conversation, can end it."
    unknown_thread: str = (
        "I only relay messages in handoff threads I started; this thread is not one of them."
    )

    @field_validator("*")
    @classmethod
    def _known_placeholders(cls, value: Any) -> Any:
        return _check_placeholders(value)


# The same keys, each optional: a locale overrides only what it translates.
LocaleTexts = create_model(  # type: ignore[call-overload]
    "LocaleTexts",
    __config__=ConfigDict(extra="forbid", frozen=True),
    __validators__={"known": field_validator("*")(_check_placeholders)},
    **{name: (str | None, None) for name in _TextsBase.model_fields},
)


class Texts(_TextsBase):
    """Default texts plus per-locale variants (``locales: {de: {...}, fr-ca: {...}}``)."""

    locales: dict[str, LocaleTexts] = Field(default_factory=dict)

    @field_validator("locales", mode="before")
    @classmethod
    def _lowercase_locales(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k).strip().lower().replace("_", "-"): v for k, v in value.items()}
        return value

    def template(self, key: str, locale: str = "") -> str:
        """The visitor's exact locale, else its language, else the default text."""
        tag = locale.strip().lower().replace("_", "-")
        for candidate in (tag, tag.split("-", 1)[0]) if tag else ():
            variant = self.locales.get(candidate)
            text = getattr(variant, key, None) if variant is not None else None
            if text:
                return str(text)
        template: str = getattr(self, key)
        return template

    def render(self, key: str, values: Mapping[str, str], locale: str = "") -> str:
        """Fill a template; missing values read as empty rather than failing a live chat."""
        filled = {name: values.get(name, "") for name in PLACEHOLDERS}
        filled["visitor_comma"] = f" {filled['visitor']}" if filled["visitor"] else ""
        return self.template(key, locale).format_map(filled)
