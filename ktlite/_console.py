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
import sysconfig
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
    """Issues a warning attributed to the line of the user's code that led to it.

    `warnings.warn`'s `stacklevel` counts frames from the caller, so a fixed level names a
    line inside ktlite (or Keras) whenever the warning is raised deeper than planned; this
    one names the innermost frame that is none of ktlite's, Keras', TensorFlow's or the
    standard library's: the user's `fit` call, also when a ktlite callback warns from
    inside Keras' loop, or the line of a user's callback that called ktlite. Where no
    such frame exists (a worker thread of the HTTP app), the ktlite line that warns.

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
    warnings.warn(message, category, stacklevel=_users_stacklevel())


def _users_stacklevel() -> int:
    """`warn`'s `stacklevel` for the innermost frame of the user's code (2 without one).

    Levels count as `warnings.warn` counts them: 1 is `warn`'s own frame, and the import
    system's `_bootstrap` frames are skipped.
    """
    packages, stdlib, installed = _library_folders()
    frame, level = inspect.currentframe().f_back.f_back, 1  # the frame that called `warn`
    while frame is not None:
        name = frame.f_code.co_filename
        if not ("importlib" in name and "_bootstrap" in name):
            level += 1
            path = os.path.abspath(name)
            if not (name.startswith("<frozen ")
                    or os.path.basename(name).startswith("__autograph_generated_file")
                    or path.startswith(packages)
                    or (path.startswith(stdlib) and not path.startswith(installed))):
                return level
        frame = frame.f_back
    return 2


def _library_folders() -> tuple[tuple[str, ...], str, tuple[str, ...]]:
    """Where code that is not the user's lives: (ktlite's folder and those of Keras,
    TensorFlow and their helpers where imported; the standard library's; the installed
    packages' folders, which sit inside the standard library's outside a virtual
    environment and hold the user's own packages too)."""
    folders = [os.path.dirname(os.path.abspath(__file__))]
    for name in ("keras", "tensorflow", "tf_keras", "absl"):
        file = getattr(sys.modules.get(name), "__file__", None)
        if file:
            folders.append(os.path.dirname(os.path.abspath(file)))
    paths = sysconfig.get_paths()
    return (tuple(os.path.join(folder, "") for folder in folders),
            os.path.join(paths["stdlib"], ""),
            tuple(os.path.join(paths[key], "") for key in ("purelib", "platlib")))
