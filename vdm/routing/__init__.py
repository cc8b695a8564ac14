"""Model resolution: provider:model prefixes and the default provider."""
