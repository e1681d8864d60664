"""The CEL rules of the ops YAML: checked, compiled once, evaluated per message.

* ``engine``: ``compile_rule`` (parse once, check, compile), ``Compiled``, ``RuleSet``;
* ``facts``: ``Facts`` (one message's facts; ``matches``) and ``FirstMatch``;
* ``fast_path``: the common shapes evaluated in Python, and its switch (``set_fast_path``);
* ``lexer``, ``parser``: CEL's grammar in Python, depth-bounded (deep trees crash the
  extension); ``check``: what the tree tells (variables and fields read, calls);
* ``cost``: what evaluating a rule may cost, for facts cut to ``bounds``.
"""

from bot.cel.engine import (
    MAX_RULE_CHARS,
    VARIABLES,
    Compiled,
    Rule,
    RuleSet,
    compile_rule,
    compiled,
)
from bot.cel.facts import Facts, FirstMatch
from bot.cel.fast_path import DEFER, ERROR, fast_path_enabled, set_fast_path

__all__ = [
    "DEFER",
    "ERROR",
    "MAX_RULE_CHARS",
    "VARIABLES",
    "Compiled",
    "Facts",
    "FirstMatch",
    "Rule",
    "RuleSet",
    "compile_rule",
    "compiled",
    "fast_path_enabled",
    "set_fast_path",
]
