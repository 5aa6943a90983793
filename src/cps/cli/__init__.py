"""The `cps` command line: a click group whose commands are thin adapters over the library.

Each command parses its arguments, calls one library function and renders the result through
`output`. Library errors (`CPSError`), the system's (`OSError`: a missing folder, a full disk) and
click's own usage errors become a message, a hint and the error's exit status here, in one place;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import click

from .. import __version__
from ..errors import CPSError, FileSystemError
from . import output
from .lazy import LazyGroup

COMMANDS = {
    "store": "store:store",
    "repo": "protect:repo_group",
    "protect": "protect:protect_command",
    "recovery-point": "protect:point_group",
    "restore": "restore:restore_command",
    "timeline": "restore:timeline_command",
    "prune": "prune:prune_command",
    "browse": "granular_browse:browse_command",
    "show": "granular_browse:show_command",
    "search": "granular_browse:search_command",
    "diff": "granular_recover:diff_command",
    "recover": "granular_recover:recover_command",
    "server": "server:server_group",
    "quickstart": "quickstart:quickstart_command",
    "verify": "verify:verify_group",
    "standby": "standby:standby_group",
    "drill": "drill:drill_command",
}


@click.group(cls=LazyGroup, lazy=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="cps")
def cps() -> None:
    """CPS: continuous protection for mail stores."""


def main() -> None:
    try:
        cps.main(prog_name="cps", standalone_mode=False)
    except CPSError as error:
        output.fail(error)
    except OSError as error:
        output.fail(FileSystemError.from_os_error(error))
    except click.exceptions.Abort:
        output.note("aborted")
        raise SystemExit(130) from None
    except click.exceptions.NoArgsIsHelpError as error:  # a group without a command: its help
        error.show()
        raise SystemExit(error.exit_code) from None
    except click.ClickException as error:
        output.fail(output.from_click(error))
    except click.exceptions.Exit as done:
        raise SystemExit(done.exit_code) from None
