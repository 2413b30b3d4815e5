"""The recorder: RTSP ingest, fMP4 segmenter, SQLite index, start-up reconciliation."""
