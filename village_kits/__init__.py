"""Village kits: household codes (一户一码), personal-data checks, rosters and printable kits.

A library with no Flask dependency; the server wires it in.
"""
