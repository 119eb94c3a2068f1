"""The error hierarchy: every user-facing failure is a CampaignError carrying its exit code (README: Exit codes)."""


class CampaignError(Exception):
    """A failure the CLI reports as one line on stderr, exiting with `exit_code`."""

    exit_code = 1


class UsageError(CampaignError):
    """Bad flags or arguments."""

    exit_code = 2


class InvalidInput(CampaignError):
    """A definition, template, filter or input file is not acceptable."""

    exit_code = 3


class NotFound(CampaignError):
    """A user, channel, segment, campaign or target does not exist."""

    exit_code = 4


class NoDatabase(NotFound):
    """A command that only reads was pointed at a database that does not exist (it creates none)."""


class DatabaseBusy(CampaignError):
    """Another process held the database longer than the busy timeout."""

    exit_code = 1

    def __init__(self, waited_s: float):
        super().__init__(f"database is locked by another process (waited {waited_s:g} s); try again")


class Conflict(CampaignError):
    """The request clashes with the current state: illegal transition, duplicate id, quota."""

    exit_code = 5


class CampaignStopped(CampaignError):
    """A campaign being sent ended `stopped` (by `campaign stop` or its stop_at), not completed."""

    exit_code = 6


class Interrupted(CampaignError):
    """Ctrl-C: the batch in hand was finished and saved."""

    exit_code = 130


class InvalidInputs(InvalidInput):
    """Several problems found at once (e.g. `validate`); each is listed on its own line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))
