"""What both services share: configuration, errors, and the wire format."""
