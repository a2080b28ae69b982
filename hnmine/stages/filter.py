"""Filter stage. The selection core is hnmine.selection; until this module holds the stage
declaration and its run-directory wrapper, it re-exports what the rest of hnmine imports here."""

from hnmine.selection import FilterOptions, filter_candidates

__all__ = ["FilterOptions", "filter_candidates"]
