"""Severity words as senders write them, and the Jira priority each one gets under an environment's policy.

Senders disagree on words: Prometheus rules say ``critical``/``warning`` but also ``page`` or ``major``, PagerDuty
says ``error``, others ``P1`` or ``sev2``. Each known word belongs to one of four levels; the policy's
``priorities`` may name any word (matched without regard to case), and a word it does not name gets the
priority of its level, or of the next level below it that the policy names.
"""

from __future__ import annotations

from workflows.policy import Environment

LEVELS = ("critical", "error", "warning", "info")  # the most severe first
_BY_LEVEL = {
    "critical": "critical crit fatal emergency emerg alert page disaster blocker highest urgent p0 p1 sev0 sev1 s1",
    "error": "error err major high p2 sev2 s2",
    "warning": "warning warn minor medium average p3 sev3 s3",
    "info": "info informational information notice low lowest debug ok none p4 p5 sev4 sev5 s4 s5",
}
WORDS: dict[str, str] = {word: level for level, words in _BY_LEVEL.items() for word in words.split()}


def _word(text: str) -> str:
    return text.strip().lower()


def level_of(word: str) -> str | None:
    """The level (critical, error, warning, info) of a known word."""
    return WORDS.get(_word(word))


def priority_for(env: Environment, word: str) -> str:
    """The Jira priority of ``word`` in ``env``: the policy's own entry for it, else its level's (or the next
    level's below it that the policy names), else the environment's default."""
    named = {_word(k): v for k, v in env.priorities.items()}
    word = _word(word)
    if word in named:
        return named[word]
    level = WORDS.get(word)
    if level is not None:
        for lower in LEVELS[LEVELS.index(level) :]:
            if lower in named:
                return named[lower]
    return env.default_priority


def _rank(env: Environment, word: str) -> float:
    """How severe ``word`` is: its level's rank; a word of the policy's own, the rank of the most severe level
    that gets the same priority; a word nobody knows, below every level."""
    level = WORDS.get(_word(word))
    if level is not None:
        return len(LEVELS) - LEVELS.index(level)
    priority = priority_for(env, word)
    same = [len(LEVELS) - i for i, lvl in enumerate(LEVELS) if priority_for(env, lvl) == priority]
    if _word(word) in {_word(k) for k in env.priorities} and same:
        return max(same)
    return 0


def highest(env: Environment, words: tuple[str, ...]) -> str:
    """The most severe of ``words`` (the first of equals); "" when there are none."""
    best, rank = "", -1.0
    for word in words:
        here = _rank(env, word)
        if here > rank:
            best, rank = word, here
    return best


def known_words(env: Environment) -> dict[str, list[str]]:
    """Every severity word the environment knows, by the Jira priority it gets (the policy's own words first)."""
    table: dict[str, list[str]] = {}
    own = [_word(k) for k in env.priorities]
    for word in dict.fromkeys([*own, *WORDS]):
        table.setdefault(priority_for(env, word), []).append(word)
    return table
