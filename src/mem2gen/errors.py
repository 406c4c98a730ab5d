"""One exception type for user mistakes: the CLI prints its message on one line and exits 2."""


class Mem2genError(Exception):
    """A user mistake: the message says what is wrong and how to fix it."""


class DamagedFile(Mem2genError, ValueError):
    """A file mem2gen wrote earlier that cannot be read back (truncated or edited)."""


def check(condition: bool, message: str) -> None:
    """Raise :class:`Mem2genError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise Mem2genError(message)
