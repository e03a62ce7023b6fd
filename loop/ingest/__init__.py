"""Getting polls, hours and zones into MongoDB: the CSV loader and its de-duplication."""

from loop.ingest.dedup import PollWrite, PollWriter, insert_polls
from loop.ingest.loader import LoadStats, StrictModeError, load_found_sources, load_sources

__all__ = [
    "LoadStats",
    "PollWrite",
    "PollWriter",
    "StrictModeError",
    "insert_polls",
    "load_found_sources",
    "load_sources",
]
