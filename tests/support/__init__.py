"""Test and benchmark support (not shipped): fake-gcs-server as a subprocess and a fault proxy in front of it."""
