"""What runs a lowered network: build (check and write artifacts), data, train."""
