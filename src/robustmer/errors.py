"""The project's single exception type.

Every error caused by the user's input (a missing file, a malformed CSV row, an unknown
system name, ...) is raised as :class:`RobustmerError` with a message that names the file or
row and says what was expected. The command line turns it into one line on stderr and exit
code 2, without a traceback.
"""


class RobustmerError(Exception):
    """An error in the user's input or environment, with a precise, user-facing message."""
