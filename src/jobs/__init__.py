"""Server-side jobs: a registry every worker sees, and runners that execute them."""
