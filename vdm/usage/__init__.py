"""Usage accounting: counters per provider:model, prices, and session summaries."""
