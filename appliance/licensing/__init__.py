"""Fixed-channel licensing: an offline licence file, signed with Ed25519 by the vendor,
bound to the board's serial number, that sets how many cameras the box records.

licence: the file format and its strict verification; keys: vendor key handling;
store: the installed licence on the persist partition (atomic, a bad one never replaces
a good one); limit: the channel count in force and which cameras it covers.
"""
