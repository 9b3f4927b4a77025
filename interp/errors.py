"""Errors the workbench raises for bad input; each message names the problem and what was expected."""


class InterpError(ValueError):
    """Base class of every user-facing error in interp."""


class UnknownModelError(InterpError):
    """A model name or path that no loader recognises."""


class DataFormatError(InterpError):
    """A dataset file that does not have the documented format (names the file and row)."""


class EmptyPromptClassError(InterpError):
    """A prompt class that an analysis needs has no prompts."""


class HookNameError(InterpError, KeyError):
    """A hook name the model does not have."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class NonFiniteLossError(InterpError, FloatingPointError):
    """A training loss became NaN or infinite."""


class ShapeMismatchError(InterpError):
    """An artifact (subspace, SAE, checkpoint) whose shapes do not fit the model it is used with."""


class GenerationMismatchError(InterpError, RuntimeError):
    """KV-cached generation disagrees with a plain forward pass: the installed stack generates wrongly."""


class NonFiniteError(InterpError, FloatingPointError):
    """A computed result (logits, scores, a kernel) came out NaN or infinite; names what and where."""
