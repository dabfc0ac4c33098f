"""What ktlite tells the user outside return values: progress lines and warnings.

ktlite's progress lines go where Keras' own progress bars go: to stdout while
`keras.config.is_interactive_logging_enabled()`, to the `ktlite` logger after
`keras.config.disable_interactive_logging()`. Its warnings name the line of the user's
code that called into ktlite, never a line inside it.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import warnings

_LOGGER = logging.getLogger("ktlite")


def say(message: object) -> None:
    """Writes one line of progress output.

    Args:
        message: What to write; converted with `str`.

    Example:
        >>> say("lr_find: 200 steps")
        lr_find: 200 steps
    """
    import keras  # imported here so that modules printing nothing stay TensorFlow-free

    line = f"{message}\n"
    if not keras.config.is_interactive_logging_enabled():
        _LOGGER.info(line.rstrip("\n"))
        return
    stream = sys.stdout
    try:
        stream.write(line)
    except UnicodeEncodeError:  # a console that cannot show every character
        encoding = stream.encoding or "utf-8"
        stream.write(line.encode(encoding, errors="replace").decode(encoding))
    stream.flush()


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """Issues a warning attributed to the user's call into ktlite.

    `warnings.warn`'s `stacklevel` counts frames from the caller, so a fixed level names a
    line inside ktlite whenever the warning is raised deeper than planned; this one names
    the line that called the outermost ktlite frame on the stack (the user's `fit`,
    `texts_from_array`, ...), also when ktlite runs inside Keras' loop, which runs inside
    ktlite again.

    Args:
        message: The warning's text, with the fix in it.
        category: The warning class.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     warn("`x` is deprecated; pass `y`.")
        >>> str(caught[0].message)
        '`x` is deprecated; pass `y`.'
    """
    root = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level, outermost = inspect.currentframe(), 1, 1
    while frame is not None:
        if os.path.abspath(frame.f_code.co_filename).startswith(root):
            outermost = level
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=outermost + 1)
