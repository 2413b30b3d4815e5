"""Playback: the timeline of what was recorded, HLS playback over the recorded fMP4
segments (byte ranges, no re-muxing), live view, snapshots and tamper-evident export."""
