"""The one exception type for mistakes a user can fix (bad config, missing data, wrong
checkpoint). The CLI prints its message on one line and exits with code 2."""


class UserError(Exception):
    """A mistake in the user's input; the message says what was wrong and what is accepted."""
