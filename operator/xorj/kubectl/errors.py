"""The one error type the plugin prints: a message and a hint, on one line, never a traceback."""

from __future__ import annotations


class PluginError(Exception):
    """A failure the person at the terminal can act on. ``hint`` says what to try next."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = f"error: {self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return " ".join(text.split())  # whatever the API server said, it stays one line
