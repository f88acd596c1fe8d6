"""A load tool for bagboard under gunicorn: see README.md in this folder."""
