"""The one exception type for mistakes a user can fix (bad config, missing data, wrong
checkpoint), and the command's exit codes. The CLI prints a UserError on one line and exits
with EXIT_USER_ERROR."""

EXIT_COMPLETE = 0  # the command did what was asked (a run trained to its end)
EXIT_BUG = 1  # an internal error: a traceback, and a line asking for a report
EXIT_USER_ERROR = 2  # bad input: one line saying what was wrong
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it); the run can be resumed


class UserError(Exception):
    """A mistake in the user's input; the message says what was wrong and what is accepted."""
