"""The crediting rules that are not per-species science: the buffer floor, how old a reading
may be, and the screening thresholds behind the plausibility flags.

Screening thresholds only decide which records a person reviews before anything is issued;
they never change a number. Where a rule has a published source it is cited; the rest are
Sipang's own screening choices and say so (docs/methodology.md lists them all).
"""

# Buffer: under the Woodland Carbon Code (Requirements §2.3 "Management of risks and
# permanence"; woodlandcarboncode.org.uk, "Permanent carbon removals") each project
# contributes 20 % of its verified units to the buffer at each verification, and a confirmed
# reversal cancels buffer units. A methodology constant: never lower, never a request field.
BUFFER_FLOOR_PCT = 20

# Client dates. A reading older than this at receipt is kept out of crediting until a
# reviewer accepts it (a phone offline for a month is plausible; a year is not).
MAX_READING_AGE_DAYS = 30
# A client time further ahead of the server than this is refused; more than CLOCK_SKEW_S
# ahead is flagged.
MAX_AHEAD_S = 86_400
CLOCK_SKEW_S = 300
# A reading may carry the same day as its tree's registration, a little before it (the form
# was opened first), never earlier.
REGISTRATION_SLACK_S = 86_400
# The earliest date any client time may carry.
EARLIEST_CLIENT_DATE = "2000-01-01"

# DBH is measured at 1.3 m (breast height): a tree not that tall has no DBH.
BREAST_HEIGHT_M = 1.3

# Diameter tape: readings within ±0.5 cm + 1 % of the diameter are the same size.
DBH_NOISE_CM = 0.5
DBH_NOISE_SHARE = 0.01
# Clinometer / hypsometer: ±0.5 m or ±10 % of the height, whichever is larger.
HEIGHT_NOISE_M = 0.5
HEIGHT_NOISE_SHARE = 0.10

# Growth screening, relative to size (Sipang screening thresholds, no cited source): the
# most a tree's DBH may grow per year as a share of its DBH at the anchor, but a young tree
# may always add SMALL_TREE_DBH_CM_PER_YEAR; height per year by group.
RELATIVE_DBH_GROWTH_PER_YEAR = {"conifer": 0.12, "broadleaf": 0.15, "fast": 0.25}
SMALL_TREE_DBH_CM_PER_YEAR = 1.2
HEIGHT_M_PER_YEAR = {"conifer": 1.2, "broadleaf": 1.5, "fast": 2.5}
FAST_GROWING = {"populus_spp", "eucalyptus_spp", "paulownia_spp", "salix_spp"}

# The DBH–height envelope (slenderness H/D, both in metres; Sipang screening thresholds):
# below these a DBH is likely a girth typed as a diameter (π × too large).
MIN_SLENDERNESS = {"conifer": 30, "broadleaf": 15, "fast": 20}
MAX_SLENDERNESS = 200

# Identity: two readings closer than their combined GPS accuracy may be one tree. A reading
# with no accuracy is taken as 10 m; the search radius never goes below 2 m or above 15 m
# (1–5 m for trees recorded as different species).
ASSUMED_GPS_ACCURACY_M = 10.0
DUPLICATE_RADIUS_M = (2.0, 15.0)
OTHER_SPECIES_RADIUS_M = (1.0, 5.0)
VILLAGE_RADIUS_M = 3000.0
# Two photos whose 64-bit difference hashes differ in at most this many bits are one photo
# re-encoded.
SIMILAR_PHOTO_BITS = 6


def growth_group(species_id: str, group: str) -> str:
    """The screening group of a species: fast-growing, conifer or broadleaf."""
    if species_id in FAST_GROWING:
        return "fast"
    return "conifer" if group == "conifer" else "broadleaf"
