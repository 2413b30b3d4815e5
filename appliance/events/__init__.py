"""Camera events (motion, tamper, line crossing, intrusion, digital inputs) from each
camera's ONVIF event service into the recording index. See docs/design/events.md."""
