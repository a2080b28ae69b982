"""`auto`: the rule chosen on the run's own data (hnmine.selection.calibrate)."""

from hnmine.methods.base import Method

AUTO = Method(
    name="auto",
    rule="the rule with the fewest false negatives on this run's own queries that have several positives "
    "(hidden-positive protocol), keeping 95% of queries full and 0.8x naive's hardness; the default method when "
    "fewer than 20 queries have several positives",
    sampling="top",
    source="hnmine (calibration on the user's data)",
)

METHODS = (AUTO,)
