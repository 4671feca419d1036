"""Start-up banner: the block-letter HERMOD of the vendor's guide, then a version line.

The art is what `figlet -f standard HERMOD` prints; the bundle's default
`messaging_banner_regex` matches its last line, so the same log check serves the
reference service and the vendor image (docs/nexus.md says how to compare it
with the vendor's own log).
"""

ART = r"""
 _   _ _____ ____  __  __  ___  ____
| | | | ____|  _ \|  \/  |/ _ \|  _ \
| |_| |  _| | |_) | |\/| | | | | | | |
|  _  | |___|  _ <| |  | | |_| | |_| |
|_| |_|_____|_| \_\_|  |_|\___/|____/
"""


def render(release: str) -> str:
    return ART + f" :: Smart ID Messaging reference ::  (v{release})\n"
