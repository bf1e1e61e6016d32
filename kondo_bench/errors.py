"""The one exception type for bad input: the CLI prints its message on one line and exits 2."""


class UserError(Exception):
    """Bad input from the user (config, data, device). The message must name the fix."""


class DataError(UserError):
    """A data file is missing, truncated or corrupt."""


class OneJobError(UserError):
    """Bad input that concerns one job of a sweep (a value of its own that cannot be set or is out
    of range), not the whole sweep: that job is recorded failed and the others run."""
