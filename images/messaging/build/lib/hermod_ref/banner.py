"""Start-up banner; its last line matches `^\\s*:: .+ ::` like Spring Boot's."""

BANNER = r"""
  _   _                           _
 | | | | ___ _ __ _ __ ___   ___ | |
 | |_| |/ _ \ '__| '_ ` _ \ / _ \| |/ _` |
 |  _  |  __/ |  | | | | | | (_) | | (_| |
 |_| |_|\___|_|  |_| |_| |_|\___/|_|\__,_|
"""


def render(release: str) -> str:
    return BANNER.rstrip("\n") + f"\n :: Smart ID Messaging reference ::  (v{release})\n"
