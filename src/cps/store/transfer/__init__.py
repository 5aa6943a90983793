"""Import and export of mail: Maildir (Maildir++), mbox (mboxrd, mboxo on import) and .eml trees.

`import_mail` reads a source into a folder of a mailbox, idempotently and resumably (see
`importer.py`); `export_mail` writes a folder with its subfolders, or a whole mailbox, to a new
directory (see `exporter.py`). Raw message bytes pass through both unchanged.
"""

from .exporter import ExportReport, check_destination, export_mail
from .importer import ImportProgress, ImportReport, Problem, import_mail
from .mbox import Quoting
from .readers import Format
from .sources import Progress

__all__ = [
    "ExportReport",
    "Format",
    "ImportProgress",
    "ImportReport",
    "Problem",
    "Progress",
    "Quoting",
    "check_destination",
    "export_mail",
    "import_mail",
]
