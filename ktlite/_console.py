"""Console output that follows Keras' interactive-logging switch.

ktlite's progress lines go where Keras' own progress bars go: to stdout while
`keras.config.is_interactive_logging_enabled()`, to the `ktlite` logger after
`keras.config.disable_interactive_logging()`.
"""

from __future__ import annotations

import logging
import sys

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
