"""`make bench`: vdm's overhead against a direct call to the same fake upstream."""
