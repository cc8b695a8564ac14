"""httpx clients per provider; the one place where httpx errors become vdm errors."""
