"""Plain `LEVEL: message` lines on stdout, as the bundle's log checks expect.

No timestamp prefix: Docker adds one, and the alias lines must read exactly
`INFO: Adding certificate <file> using alias <alias>`.
"""

import logging
import sys


def setup(level: str = "INFO") -> None:
    logging.addLevelName(logging.WARNING, "WARN")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
