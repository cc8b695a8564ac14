"""Configuration: settings, provider discovery and .env loading."""
