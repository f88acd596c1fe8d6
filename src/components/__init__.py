"""Reusable UI pieces shared by every view."""
